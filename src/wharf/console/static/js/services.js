// Services: every InferenceService and InferenceGraph, with its URL, readiness (and why not), traffic split,
// replicas and live figures; polled every 2 s, rows updated in place so that a moving split animates. Graphs with
// Bandit nodes show their arms below (bandits.js).

import { api, paths } from "./api.js";
import { banditPanel } from "./bandits.js";
import { fill, fmt, h, poll, readiness } from "./dom.js";
import { serviceFigures, splitBar, updateSplit } from "./widgets.js";

const COLUMNS = ["Name", "URL", "Ready", "Traffic", "Replicas", "Req/s", "Errors", "p50", "p99"];

export function render(root) {
  const body = h("tbody");
  const graphsBody = h("tbody");
  const empty = h("p", { class: "empty", hidden: true }, "No InferenceService yet. ", h("a", { href: "#/apply" }, "Apply one"), ".");
  const graphs = h(
    "section",
    { hidden: true },
    h("h2", {}, "Inference graphs"),
    h("table", { class: "grid", id: "graphs" }, h("thead", {}, h("tr", {}, ["Name", "URL", "Ready"].map((c) => h("th", {}, c)))), graphsBody),
  );
  const bandits = banditPanel();
  root.append(
    h("h1", {}, "Services"),
    h("table", { class: "grid", id: "services" }, h("thead", {}, h("tr", {}, COLUMNS.map((c) => h("th", {}, c)))), body),
    empty,
    graphs,
    bandits.section,
  );
  const rows = new Map();

  return poll(async () => {
    const [services, graphList, live] = await Promise.all([api(paths.services), api(paths.graphs), api(paths.live)]);
    const items = services.items.sort(byName);
    const seen = new Set();
    for (const service of items) {
      const key = `${service.metadata.namespace || "default"}/${service.metadata.name}`;
      seen.add(key);
      let row = rows.get(key);
      if (!row) rows.set(key, (row = makeRow(service)));
      updateRow(row, service, live.items);
      body.append(row.tr); // in order
    }
    for (const [key, row] of rows) {
      if (!seen.has(key)) {
        row.tr.remove();
        rows.delete(key);
      }
    }
    empty.hidden = items.length > 0;
    graphs.hidden = graphList.items.length === 0;
    fill(
      graphsBody,
      graphList.items.sort(byName).map((g) => h("tr", { "data-name": g.metadata.name }, h("td", {}, qualified(g)), h("td", {}, h("code", {}, g.status?.url || "")), h("td", {}, readiness(g)))),
    );
    await bandits.update(graphList.items);
  }, 2000);
}

function byName(a, b) {
  return qualified(a).localeCompare(qualified(b));
}

function qualified(resource) {
  const ns = resource.metadata.namespace || "default";
  return ns === "default" ? resource.metadata.name : `${ns}/${resource.metadata.name}`;
}

function makeRow(service) {
  const ns = service.metadata.namespace || "default";
  const cells = Object.fromEntries(COLUMNS.map((c) => [c, h("td", { "data-col": c.toLowerCase() })]));
  cells.Name.append(h("a", { href: `#/services/${encodeURIComponent(ns)}/${encodeURIComponent(service.metadata.name)}` }, qualified(service)));
  const bar = splitBar([]);
  cells.Traffic.append(bar);
  const tr = h("tr", { "data-name": service.metadata.name }, Object.values(cells));
  return { tr, cells, bar };
}

function updateRow(row, service, live) {
  const { cells } = row;
  const figures = serviceFigures(service, live);
  fill(cells.URL, h("code", {}, service.status?.url || ""));
  fill(cells.Ready, readiness(service));
  updateSplit(row.bar, service.status?.components?.predictor?.traffic);
  fill(cells.Replicas, `${figures.ready}/${fmt.num(figures.desired, 0)}`);
  cells.Replicas.title = "ready / desired";
  fill(cells["Req/s"], fmt.num(figures.rps, 2));
  fill(cells.Errors, fmt.pct(figures.errorRatio));
  cells.Errors.classList.toggle("bad", figures.errorRatio > 0);
  fill(cells.p50, fmt.ms(figures.p50Ms));
  fill(cells.p99, fmt.ms(figures.p99Ms));
}
