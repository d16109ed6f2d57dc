// Monitoring: what the model monitor says of each model; each scheduled drift, fairness or performance metric
// over the last hour with its bounds, and which columns drift; the outlier and adversarial detectors, with the
// rows they flagged over time. Read through the control API (the monitor's own port takes no token).

import { api, paths } from "./api.js";
import { threshold, timeChart } from "./charts.js";
import { fill, fmt, h, poll } from "./dom.js";

const LINE_COLOURS = ["#2f6fde", "#e07b20", "#2a9d63", "#b23a9a", "#c9a400", "#4b9fb5", "#7a5cc7", "#555"];

export function render(root, _params, context) {
  root.append(h("h1", {}, "Monitoring"));
  if (!context.monitor) {
    root.append(h("p", { class: "empty" }, "No model monitor runs with this wharf up (WHARF_MONITOR_ENABLED=false)."));
    return () => {};
  }
  const models = h("tbody");
  const noMetric = h("p", { class: "empty", hidden: true }, "No metric is scheduled (POST /metrics/drift/... /request on the monitor).");
  const metrics = h("div", { class: "metrics" }, noMetric);
  const detectorRows = h("tbody");
  const detectorCharts = h("div", { class: "charts" });
  root.append(
    h("section", { class: "card" }, h("h2", {}, "Models"), h("table", { class: "grid", id: "monitored-models" }, h("thead", {}, h("tr", {}, ["Model", "Logged rows", "Metrics outside bounds", "Outliers", "Adversarial"].map((c) => h("th", {}, c)))), models)),
    h("section", { class: "card" }, h("h2", {}, "Scheduled metrics"), metrics),
    h(
      "section",
      { class: "card" },
      h("h2", {}, "Detectors"),
      h("table", { class: "grid", id: "detectors" }, h("thead", {}, h("tr", {}, ["Detector", "Model", "State", "Inspected", "Detected", "Rate"].map((c) => h("th", {}, c)))), detectorRows),
      detectorCharts,
    ),
  );
  const cards = new Map();
  const charts = new Map();

  return poll(async () => {
    const since = Date.now() / 1000 - 3600;
    const params = new URLSearchParams([["prefix", "metric/"], ["prefix", "detector/"], ["since", String(since)]]);
    const [status, requests, detectors, history] = await Promise.all([
      api(paths.monitor("status")),
      api(paths.monitor("metrics/all/requests")),
      api(paths.monitor("detectors")),
      api(paths.history(params)),
    ]);
    fill(
      models,
      Object.entries(status.models).map(([model, said]) =>
        h(
          "tr",
          {},
          h("td", {}, model),
          h("td", {}, String(said.rows)),
          h("td", {}, said.outsideBounds.length ? said.outsideBounds.map((m) => h("span", { class: "badge bad" }, m)) : "none"),
          h("td", {}, said.outliers ? `${said.outliers.detected} of ${said.outliers.inspected} (${fmt.pct(said.outliers.rate)})` : "–"),
          h("td", {}, said.adversarial ? `${said.adversarial.detected} of ${said.adversarial.inspected} (${fmt.pct(said.adversarial.rate)})` : "–"),
        ),
      ),
    );
    noMetric.hidden = requests.requests.length > 0;
    const seen = new Set();
    for (const request of requests.requests) {
      seen.add(request.id);
      if (!cards.has(request.id)) {
        const card = metricCard(request);
        cards.set(request.id, card);
        metrics.append(card.element);
      }
      cards.get(request.id).update(request, history.series[`metric/${request.id}`]);
    }
    for (const [id, card] of cards) {
      if (seen.has(id)) continue;
      card.element.remove();
      cards.delete(id);
    }
    fill(
      detectorRows,
      detectors.detectors.map((d) =>
        h("tr", {}, h("td", {}, d.type), h("td", {}, d.modelId), h("td", {}, d.error ? h("span", { class: "badge bad", title: d.error }, d.state) : d.state), h("td", {}, String(d.counts.inspected)), h("td", {}, String(d.counts.detected)), h("td", {}, fmt.pct(d.counts.inspected ? d.counts.detected / d.counts.inspected : 0))),
      ),
    );
    for (const [id, chart] of charts) {
      if (detectors.detectors.some((d) => d.id === id)) continue;
      chart.element.remove();
      charts.delete(id);
    }
    for (const detector of detectors.detectors) {
      if (!charts.has(detector.id)) charts.set(detector.id, timeChart(detectorCharts, `${detector.type} of ${detector.modelId}: rows flagged per sample`, ""));
      const series = history.series[`detector/${detector.id}`];
      const times = series ? series.t.slice(1) : [];
      const flagged = series ? series.detected.slice(1).map((v, i) => (v == null || series.detected[i] == null ? null : Math.max(0, v - series.detected[i]))) : [];
      charts.get(detector.id).update([{ label: "flagged rows", colour: "#d94545", values: flagged }], times);
    }
  }, 5000);
}

/** One scheduled metric: its latest verdict, the columns that drift, and its values over time within its bounds. */
function metricCard(request) {
  const r = request.request;
  const title = `${r.metricName} of ${r.modelId}${r.requestName ? ` (${r.requestName})` : ""}`;
  const verdict = h("p");
  const element = h("div", { class: "metric", "data-request": request.id }, h("h3", {}, title), verdict);
  const chart = timeChart(element, "Values over the last hour, bounds dashed", "");
  const update = (latest, series) => {
    const status = latest.status;
    const bounds = status.thresholds;
    const drifting = Object.entries(bounds?.namedOutsideBounds || {}).filter(([, out]) => out).map(([column]) => column);
    fill(
      verdict,
      status.outsideBounds === null ? h("span", { class: "badge wait" }, "not computed yet") : status.outsideBounds ? h("span", { class: "badge bad" }, "outside bounds") : h("span", { class: "badge ok" }, "within bounds"),
      status.value != null ? ` value ${fmt.num(status.value, 3)}` : "",
      bounds ? ` (bounds ${fmt.num(bounds.lowerBound, 3)} to ${fmt.num(bounds.upperBound, 3)})` : "",
      status.since ? `, since ${new Date(status.since).toLocaleTimeString()}` : "",
      status.error ? h("span", { class: "error" }, ` ${status.error}`) : "",
      drifting.length ? h("span", { class: "drifting" }, " Drifting: ", drifting.map((c) => h("span", { class: "badge bad column" }, c))) : "",
      bounds?.namedOutsideBounds && !drifting.length ? " No column drifts." : "",
    );
    if (!series) return chart.update([], []);
    const fields = Object.keys(series).filter((f) => f !== "t");
    const lines = fields.map((field, i) => ({ label: field, colour: LINE_COLOURS[i % LINE_COLOURS.length], values: series[field] }));
    if (bounds) {
      for (const [label, value] of [["lower bound", bounds.lowerBound], ["upper bound", bounds.upperBound]]) {
        if (Number.isFinite(value)) lines.push(threshold(label, value, series.t));
      }
    }
    chart.update(lines, series.t);
  };
  return { element, update };
}
