// One InferenceService: its traffic and rollout actions, charts of the last hour per revision, the autoscaler's
// state, its revisions and what changed between them, its components' replicas and recent log lines, its events,
// and a "try it" panel that sends a request through the gateway (by way of the control API).

import { api, paths } from "./api.js";
import { timeChart } from "./charts.js";
import { canonical, lineDiff } from "./diff.js";
import { confirmAction, fill, fmt, h, poll, readiness, toast } from "./dom.js";
import { colour, splitBar, updateSplit } from "./widgets.js";

const EXAMPLES = {
  v1: { instances: [[5.1, 3.5, 1.4, 0.2]] },
  v2: { inputs: [{ name: "input-0", shape: [1, 4], datatype: "FP32", data: [5.1, 3.5, 1.4, 0.2] }] },
};

export function render(root, [namespace, name], context) {
  const stops = [];
  const header = h("div", { class: "title" });
  const actions = h("div", { class: "actions" });
  const traffic = h("div", { class: "traffic" });
  const charts = h("div", { class: "charts" });
  const scaling = h("tbody");
  const revisions = h("div", { class: "revisions" });
  const replicas = h("div", { class: "replicas" });
  const events = h("ul", { class: "events" });
  const monitoring = h("div");
  const tryIt = h("div", { class: "try" });
  root.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/services" }, "Services"), " / ", namespace, " / ", name),
    header,
    actions,
    h("section", { class: "card" }, h("h2", {}, "Traffic"), traffic),
    h("section", { class: "card" }, h("h2", {}, "The last hour"), charts),
    h(
      "section",
      { class: "card" },
      h("h2", {}, "Autoscaler"),
      h("table", { class: "grid", id: "autoscaler" }, h("thead", {}, h("tr", {}, ["Revision", "Desired", "Ready", "Panic", "In flight", "Queued", "Cold starts", "Mean cold start"].map((c) => h("th", {}, c)))), scaling),
    ),
    h("section", { class: "card" }, h("h2", {}, "Try it"), tryIt),
    h("section", { class: "card" }, h("h2", {}, "Revisions"), revisions),
    h("section", { class: "card" }, h("h2", {}, "Components and replicas"), replicas),
    h("section", { class: "card", hidden: true, id: "monitoring-card" }, h("h2", {}, "Model monitor"), monitoring),
    h("section", { class: "card" }, h("h2", {}, "Events"), events),
  );

  const state = { service: null, revisions: null, bars: new Map(), live: {} };
  const chartSet = {
    rps: timeChart(charts, "Requests/s", "/s"),
    latency: timeChart(charts, "Latency p50 (solid) and p99 (dashed)", " ms"),
    errors: timeChart(charts, "Error ratio", "%"),
  };
  buildActions(actions, namespace, name, context, () => state.service);
  const tryItShows = buildTryIt(tryIt, namespace, name, context);
  const refreshCharts = async () => {
    if (!state.revisions) return;
    const names = Object.values(state.revisions.components).flatMap((list) => list.map((r) => r.name));
    const params = new URLSearchParams(names.map((n) => ["series", `revision/${n}`]));
    params.set("since", String(Date.now() / 1000 - 3600));
    showCharts(chartSet, (await api(paths.history(params))).series);
  };

  stops.push(
    poll(async () => {
      const [service, live] = await Promise.all([api(paths.service(namespace, name)), api(paths.live)]);
      state.service = service;
      state.live = live.items;
      showHeader(header, service, context);
      showTraffic(traffic, state.bars, service);
      showScaling(scaling, service, live.items);
      showMonitoring(monitoring, service);
      tryItShows(service);
      if (state.revisions && state.revisions.latest !== latestRevisions(service)) state.revisions = null;
      if (!state.revisions) {
        const shown = await api(paths.revisions(namespace, name));
        state.revisions = { ...shown, latest: latestRevisions(service) };
        showRevisions(revisions, state.revisions);
        await refreshCharts(); // its revisions are known now: no need to wait for the charts' next turn
      }
      showRevisionTables(revisions, state.revisions, service);
      if (showReplicas(replicas, service, state.revisions)) await showLogs(replicas, namespace, name, service);
    }, 2000),
    poll(refreshCharts, 5000),
    poll(async () => {
      const listed = await api(paths.events(namespace, name));
      fill(
        events,
        listed.items.slice(-20).reverse().map((e) =>
          h("li", { class: e.type === "Warning" ? "warning" : "" }, h("time", {}, e.lastTimestamp), " ", h("b", {}, e.reason), " ", e.message, e.count > 1 ? ` (×${e.count})` : ""),
        ),
      );
    }, 5000),
    poll(() => showLogs(replicas, namespace, name, state.service), 5000),
  );
  return () => stops.forEach((stop) => stop());
}

function latestRevisions(service) {
  return Object.values(service.status?.components || {}).map((c) => c.latestCreatedRevision).join(",");
}

function showHeader(header, service, context) {
  const url = service.status?.url;
  fill(
    header,
    h("h1", {}, service.metadata.name),
    h("p", {}, url ? h("code", { class: "url" }, url) : null, " ", readiness(service)),
    h("p", { class: "hint" }, "Through the gateway: ", h("code", {}, `curl -H 'Host: ${url ? new URL(url).host : ""}' ${context.gatewayUrl}/v1/models/${service.metadata.name}:predict -d @request.json`)),
  );
}

function buildActions(actions, namespace, name, context, current) {
  const disabled = !context.admin;
  const why = disabled ? "the viewer token may only read" : undefined;
  const percent = h("input", { type: "number", min: 0, max: 100, step: 1, value: 10, id: "canary-percent", disabled, title: why });
  const act = async (question, verb, call) => {
    if (!(await confirmAction(question, verb))) return;
    try {
      await call();
      toast(`${verb}: done`);
    } catch (error) {
      toast(`${verb}: ${error.message}`, "error");
    }
  };
  fill(
    actions,
    h("button", { id: "promote", disabled, title: why, onclick: () => act(`Promote the latest revisions of ${name}: send them all traffic?`, "Promote", () => api(paths.promote(namespace, name), { method: "POST" })) }, "Promote"),
    h("button", { id: "rollback", disabled, title: why, onclick: () => act(`Roll ${name} back: take its canary (or its latest promoted revision) out of traffic?`, "Roll back", () => api(paths.rollback(namespace, name), { method: "POST" })) }, "Roll back"),
    h("label", { class: "canary" }, "Canary ", percent, " % "),
    h(
      "button",
      {
        id: "set-canary",
        disabled,
        title: why,
        onclick: () => {
          const value = Number(percent.value);
          if (!Number.isInteger(value) || value < 0 || value > 100) return toast("canary percent: a whole number from 0 to 100", "error");
          act(`Send ${value}% of ${name}'s requests to its latest predictor revision (the rest to the one rolled out)?`, "Set canary", () => setCanary(current(), value));
        },
      },
      "Set canary",
    ),
  );
}

/** Apply the service's manifest with the predictor's canaryTrafficPercent set: what `kubectl edit` would do. */
async function setCanary(service, percent) {
  const { name, namespace, labels, annotations } = service.metadata;
  const spec = structuredClone(service.spec);
  spec.predictor.canaryTrafficPercent = percent;
  const manifest = { apiVersion: service.apiVersion, kind: service.kind, metadata: { name, namespace, labels, annotations }, spec };
  return api(paths.apply(false), { method: "POST", body: JSON.stringify(manifest) });
}

function showTraffic(el, bars, service) {
  const components = service.status?.components || {};
  for (const [component, status] of Object.entries(components)) {
    let bar = bars.get(component);
    if (!bar) {
      bar = splitBar([]);
      bar.id = `split-${component}`;
      bars.set(component, bar);
      el.append(h("div", { class: "component-split" }, h("span", { class: "component" }, component), bar));
    }
    updateSplit(bar, status.traffic);
  }
}

function showScaling(body, service, live) {
  const names = Object.values(service.status?.components || {}).flatMap((c) => (c.traffic || []).map((t) => t.revisionName));
  fill(
    body,
    [...new Set(names)].map((revision) => {
      const f = live[revision] || {};
      const coldMean = f.coldStarts ? f.coldStartSeconds / f.coldStarts : null;
      return h(
        "tr",
        { "data-revision": revision },
        h("td", {}, h("span", { class: "swatch", "data-colour": colour(revision) }), revision),
        h("td", {}, fmt.num(f.desired, 0)),
        h("td", {}, fmt.num(f.ready, 0)),
        h("td", {}, f.panic ? h("span", { class: "badge bad" }, "panic") : "no"),
        h("td", {}, fmt.num(f.inFlight, 0)),
        h("td", {}, fmt.num(f.queued, 0)),
        h("td", {}, fmt.num(f.coldStarts || 0, 0)),
        h("td", {}, coldMean == null ? "–" : `${fmt.num(coldMean, 2)} s`),
      );
    }),
  );
  for (const swatch of body.querySelectorAll(".swatch")) swatch.style.background = swatch.dataset.colour;
}

function showCharts(charts, series) {
  const names = Object.keys(series).sort();
  const times = [...new Set(names.flatMap((key) => series[key].t))].sort((a, b) => a - b);
  const column = (key, field, scale = 1) => {
    const at = new Map(series[key].t.map((t, i) => [t, series[key][field][i]]));
    return times.map((t) => (at.has(t) && at.get(t) !== null ? at.get(t) * scale : null));
  };
  const label = (key) => key.replace(/^revision\//, "");
  charts.rps.update(names.map((k) => ({ label: label(k), colour: colour(label(k)), values: column(k, "rps") })), times);
  charts.latency.update(
    names.flatMap((k) => [
      { label: `${label(k)} p50`, colour: colour(label(k)), values: column(k, "p50Ms") },
      { label: `${label(k)} p99`, colour: colour(label(k)), dash: [4, 3], values: column(k, "p99Ms") },
    ]),
    times,
  );
  charts.errors.update(names.map((k) => ({ label: label(k), colour: colour(label(k)), values: column(k, "errorRatio", 100) })), times);
}

/** Each component's revisions (a table, filled by `showRevisionTables`) and what changed between two of them. */
function showRevisions(el, shown) {
  const blocks = Object.entries(shown.components).map(([component, list]) => {
    const names = list.map((r) => r.name);
    const from = h("select", { "aria-label": "from" }, names.map((n) => h("option", { value: n }, n)));
    const to = h("select", { "aria-label": "to" }, names.map((n) => h("option", { value: n }, n)));
    from.value = names[Math.max(0, names.length - 2)];
    to.value = names[names.length - 1];
    const out = h("pre", { class: "diff" });
    const spec = (n) => list.find((r) => r.name === n).spec;
    const redraw = () =>
      fill(
        out,
        lineDiff(canonical(spec(from.value)), canonical(spec(to.value))).map(([mark, line]) => h("span", { class: mark === "+" ? "add" : mark === "-" ? "del" : "" }, `${mark} ${line}\n`)),
      );
    from.onchange = to.onchange = redraw;
    redraw();
    return h(
      "div",
      { class: "component-revisions" },
      h("h3", {}, component),
      h("table", { class: "grid" }, h("thead", {}, h("tr", {}, ["Revision", "Created", "Traffic", ""].map((c) => h("th", {}, c)))), h("tbody", { "data-component": component })),
      h("p", { class: "diff-pick" }, "What changed from ", from, " to ", to, " (secrets hidden):"),
      out,
    );
  });
  fill(
    el,
    blocks,
    h("details", {}, h("summary", {}, "The service's spec (secrets hidden)"), h("pre", {}, canonical({ metadata: shown.metadata, spec: shown.spec }))),
  );
}

/** The revisions' rows: when each was made, its share of traffic and its place in the rollout, as they are now. */
function showRevisionTables(el, shown, service) {
  const components = service.status?.components || {};
  for (const [component, list] of Object.entries(shown.components)) {
    const status = components[component] || {};
    const share = Object.fromEntries((status.traffic || []).map((t) => [t.revisionName, t.percent]));
    const rows = list
      .slice()
      .reverse()
      .map((r) => {
        const tags = [
          r.name === status.latestCreatedRevision && "latest",
          r.name === status.latestRolledoutRevision && "rolled out",
          r.name === status.previousRolledoutRevision && "previous",
        ].filter(Boolean);
        return h("tr", {}, h("td", {}, r.name), h("td", {}, fmt.ago(r.created)), h("td", {}, share[r.name] ? `${share[r.name]}%` : "–"), h("td", {}, tags.join(", ")));
      });
    const body = el.querySelector(`tbody[data-component="${component}"]`);
    if (body) fill(body, rows);
  }
}

function revisionComponent(revisions, revision) {
  for (const [component, list] of Object.entries(revisions?.components || {})) {
    if (list.some((r) => r.name === revision)) return component;
  }
  return "predictor";
}

/** Each component's replicas, and a box for its log lines; whether a component was new (its logs are due now). */
function showReplicas(el, service, revisions) {
  const components = Object.keys(service.status?.components || {});
  const states = service.status?.replicaStates || [];
  let added = false;
  for (const component of components) {
    let block = el.querySelector(`[data-component="${component}"]`);
    if (!block) {
      added = true;
      block = h("div", { class: "component", "data-component": component }, h("h3", {}, component), h("ul", { class: "replica-list" }), h("pre", { class: "log" }, "…"));
      el.append(block);
    }
    const mine = states.filter((r) => revisionComponent(revisions, r.revision) === component);
    fill(
      block.querySelector(".replica-list"),
      mine.length
        ? mine.map((r) =>
            h(
              "li",
              {},
              h("span", { class: `badge ${r.ready ? "ok" : "wait"}` }, r.ready ? "ready" : "starting"),
              ` ${r.id} (${r.revision})`,
              r.restarts ? `, ${r.restarts} restarts` : "",
              r.last_error && !r.ready ? h("div", { class: "reason" }, r.last_error) : null,
            ),
          )
        : h("li", { class: "empty" }, "no replicas (scaled to zero)"),
    );
  }
  return added;
}

async function showLogs(el, namespace, name, service) {
  if (!service) return;
  for (const component of Object.keys(service.status?.components || {})) {
    const pre = el.querySelector(`[data-component="${component}"] .log`);
    if (!pre) continue;
    try {
      const text = await api(paths.log(namespace, name, component, 30), { text: true });
      pre.textContent = text.trim() || "(no lines yet)";
    } catch (error) {
      pre.textContent = error.message;
    }
  }
}

function showMonitoring(el, service) {
  const monitored = service.status?.monitoring;
  document.getElementById("monitoring-card").hidden = !monitored;
  if (!monitored) return;
  const outside = monitored.outsideBounds || [];
  fill(
    el,
    h("p", {}, `${monitored.rows} logged rows. `, outside.length ? h("span", { class: "badge bad" }, `outside bounds: ${outside.join(", ")}`) : h("span", { class: "badge ok" }, "every metric within bounds")),
    monitored.outliers ? h("p", {}, `Outliers: ${monitored.outliers.detected} of ${monitored.outliers.inspected} rows (${fmt.pct(monitored.outliers.rate)}).`) : null,
    h("p", {}, h("a", { href: "#/monitoring" }, "Drift, bias and outliers over time")),
  );
}

/** The "try it" panel; returns what shows a service's state there (an Explain button when it has an explainer;
 * the protocol its predictor declares, at first). */
function buildTryIt(el, namespace, name, context) {
  const protocol = h("select", { id: "try-protocol" }, h("option", { value: "v1" }, "V1 (:predict)"), h("option", { value: "v2" }, "V2 (/infer)"));
  const body = h("textarea", { id: "try-body", rows: 6, spellcheck: "false" });
  const key = h("input", { id: "try-key", type: "password", placeholder: "API key, if the service asks for one", autocomplete: "off" });
  const answer = h("pre", { id: "try-answer", class: "answer", hidden: true });
  const explanation = h("pre", { id: "try-explanation", class: "answer", hidden: true });
  const example = () => (body.value = JSON.stringify(EXAMPLES[protocol.value]));
  protocol.onchange = example;
  example();
  const send = async (verb, out) => {
    let parsed;
    try {
      parsed = JSON.parse(body.value);
    } catch (error) {
      return toast(`the request is not JSON: ${error.message}`, "error");
    }
    out.hidden = false;
    out.textContent = "…";
    try {
      const headers = key.value ? { "x-api-key": key.value } : {};
      const got = await api(paths.infer(namespace, name, protocol.value, verb), { method: "POST", body: JSON.stringify(parsed), headers });
      out.className = `answer ${got.status < 400 ? "ok" : "bad"}`;
      out.textContent = `${got.status} in ${fmt.ms(got.latencyMs)}\n${JSON.stringify(got.body, null, 1)}`;
    } catch (error) {
      out.className = "answer bad";
      out.textContent = error.message;
    }
  };
  const disabled = !context.admin;
  const why = disabled ? "sending requests needs the admin token" : undefined;
  const explain = h("button", { id: "try-explain", disabled, title: why, hidden: true, onclick: () => send("explain", explanation) }, "Explain");
  fill(
    el,
    h("p", {}, "Sent through the gateway to ", h("code", {}, `${name}.${namespace}.${context.domain}`), ", as a client's request."),
    h("div", { class: "row" }, protocol, key),
    body,
    h("div", { class: "row" }, h("button", { id: "try-send", class: "primary", disabled, title: why, onclick: () => send("predict", answer) }, "Send"), explain),
    answer,
    explanation,
  );
  let first = true;
  return (service) => {
    explain.hidden = !service.status?.components?.explainer;
    if (first) {
      first = false;
      protocol.value = service.spec?.predictor?.model?.protocolVersion === "v2" ? "v2" : "v1";
      example();
    }
  };
}
