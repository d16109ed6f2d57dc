// The service graph: who calls whom through the gateway (clients, graphs, each service's transformer, predictor
// and explainer), with requests/s and errors on each edge, from the control API's service graph
// (GET /apis/wharf.dev/v1/servicegraph); drawn as columns of boxes, each one step further from the callers.

import { api, paths } from "./api.js";
import { fill, fmt, h, poll, s } from "./dom.js";

const BOX = { width: 190, height: 46, column: 260, row: 72, margin: 24 };
const ORDER = { transformer: 0, explainer: 1, predictor: 2 };

export function render(root) {
  const picture = h("div", { class: "graph-picture", id: "service-graph" });
  const legend = h("p", { class: "hint" }, "Edges: requests/s and error ratio over the gateway's statistics window (60 s by default). Red: some requests failed.");
  root.append(h("h1", {}, "Service graph"), legend, picture);
  return poll(async () => fill(picture, draw(await api(paths.serviceGraph))), 2000);
}

/** The graph's vertices: the client, each graph, and each component of each service. */
function vertices(graph) {
  const shown = new Map();
  for (const node of graph.nodes) {
    if (node.kind !== "InferenceService") {
      shown.set(node.id, { id: node.id, title: node.kind === "Client" ? "clients" : node.id, subtitle: node.kind === "Client" ? "outside Wharf" : "InferenceGraph", ready: node.ready !== false, depth: node.kind === "Client" ? 0 : 1 });
      continue;
    }
    const components = Object.keys(node.components || {}).sort((a, b) => (ORDER[a] ?? 3) - (ORDER[b] ?? 3));
    for (const component of components) {
      const revisions = node.components[component].revisions || [];
      const replicas = revisions.flatMap((r) => r.replicas || []);
      const front = component === "predictor" && components.includes("transformer") ? 2 : 1;
      shown.set(`${node.id}:${component}`, {
        id: `${node.id}:${component}`,
        title: node.id,
        subtitle: `${component} · ${replicas.filter((r) => r.ready).length}/${replicas.length} ready`,
        ready: node.ready !== false,
        depth: front,
      });
    }
  }
  return shown;
}

/** Edges summed per pair of vertices (an edge per revision comes from the API). */
function joined(graph) {
  const pairs = new Map();
  for (const edge of graph.edges) {
    const from = edge.sourceComponent ? `${edge.source}:${edge.sourceComponent}` : edge.source;
    const to = edge.component ? `${edge.destination}:${edge.component}` : edge.destination;
    const key = `${from}>${to}`;
    const pair = pairs.get(key) || { from, to, rps: 0, requests: 0, errors: 0, p99: null };
    pair.rps += edge.requestsPerSecond || 0;
    pair.requests += edge.requests || 0;
    pair.errors += edge.errors || 0;
    if (edge.p99Ms != null) pair.p99 = Math.max(pair.p99 ?? 0, edge.p99Ms);
    pairs.set(key, pair);
  }
  return [...pairs.values()];
}

function draw(graph) {
  const nodes = vertices(graph);
  const edges = joined(graph).filter((e) => nodes.has(e.from) && nodes.has(e.to));
  if (nodes.size === 0) return h("p", { class: "empty" }, "Nothing to show yet: apply a service and send it requests.");
  for (let pass = 0; pass < nodes.size; pass++) {
    let moved = false;
    for (const e of edges) {
      const want = nodes.get(e.from).depth + 1;
      if (e.from !== e.to && nodes.get(e.to).depth < want && want <= nodes.size) {
        nodes.get(e.to).depth = want;
        moved = true;
      }
    }
    if (!moved) break;
  }
  const columns = new Map();
  for (const node of nodes.values()) {
    if (!columns.has(node.depth)) columns.set(node.depth, []);
    columns.get(node.depth).push(node);
  }
  const depths = [...columns.keys()].sort((a, b) => a - b);
  let rows = 0;
  depths.forEach((depth, x) => {
    columns.get(depth).forEach((node, y) => {
      node.x = BOX.margin + x * BOX.column;
      node.y = BOX.margin + y * BOX.row;
    });
    rows = Math.max(rows, columns.get(depth).length);
  });
  const width = BOX.margin * 2 + (depths.length - 1) * BOX.column + BOX.width;
  const height = BOX.margin * 2 + (rows - 1) * BOX.row + BOX.height;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": "service graph" });
  svg.append(s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: "auto-start-reverse" }, s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }))));
  for (const e of edges) svg.append(edge(nodes.get(e.from), nodes.get(e.to), e));
  for (const node of nodes.values()) svg.append(box(node));
  return svg;
}

function edge(from, to, figures) {
  const x1 = from.x + BOX.width;
  const y1 = from.y + BOX.height / 2;
  const x2 = to.x;
  const y2 = to.y + BOX.height / 2;
  const bend = Math.max(40, (x2 - x1) / 2);
  const failing = figures.errors > 0;
  const ratio = figures.requests ? figures.errors / figures.requests : 0;
  const label = `${fmt.num(figures.rps, 2)} rps${failing ? ` · ${fmt.pct(ratio)} err` : ""}`;
  return s(
    "g",
    { class: ["edge", failing && "failing"], "data-from": from.id, "data-to": to.id },
    s("path", { d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`, "marker-end": "url(#arrow)", "stroke-width": Math.min(6, 1.5 + Math.log10(1 + figures.rps) * 2) }),
    s("text", { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 6, "text-anchor": "middle" }, label),
    s("title", {}, `${from.id} → ${to.id}: ${label}${figures.p99 != null ? `, p99 ${fmt.ms(figures.p99)}` : ""}`),
  );
}

function box(node) {
  return s(
    "g",
    { class: ["node", !node.ready && "not-ready"], "data-id": node.id, transform: `translate(${node.x} ${node.y})` },
    s("rect", { width: BOX.width, height: BOX.height, rx: 6 }),
    s("text", { x: 10, y: 19, class: "title" }, node.title.length > 26 ? `${node.title.slice(0, 25)}…` : node.title),
    s("text", { x: 10, y: 36, class: "subtitle" }, node.subtitle),
  );
}
