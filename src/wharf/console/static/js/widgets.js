// Pieces more than one view shows: the traffic split bar, revision colours, a service's figures summed over its
// revisions.

import { h } from "./dom.js";

const PALETTE = ["#2f6fde", "#e07b20", "#2a9d63", "#b23a9a", "#c9a400", "#4b9fb5", "#d94545", "#7a5cc7"];

/** A revision's colour, the same in every bar and chart: by its number (NAME-00003). */
export function colour(revision) {
  const number = Number(/(\d+)$/.exec(revision || "")?.[1] || 0);
  return PALETTE[number % PALETTE.length];
}

/** Update `bar` (made by `splitBar`) to `traffic` ([{revisionName, percent, tag}]); segments are kept by revision,
 * so that a change of split moves (the width's transition) rather than redraws. */
export function updateSplit(bar, traffic) {
  const shown = new Map([...bar.children].map((segment) => [segment.dataset.revision, segment]));
  const wanted = (traffic || []).filter((t) => t.percent > 0);
  for (const entry of wanted) {
    let segment = shown.get(entry.revisionName);
    if (!segment) {
      segment = h("span", { class: "segment", "data-revision": entry.revisionName }, h("span", { class: "label" }));
      segment.style.width = "0%";
      segment.style.background = colour(entry.revisionName);
      bar.append(segment);
      segment.getBoundingClientRect(); // start the transition from zero width
    }
    shown.delete(entry.revisionName);
    segment.dataset.percent = String(entry.percent);
    segment.style.width = `${entry.percent}%`;
    const label = `${shortRevision(entry.revisionName)} ${entry.percent}%`;
    segment.firstChild.textContent = label;
    segment.title = `${entry.revisionName}${entry.tag ? ` (${entry.tag})` : ""}: ${entry.percent}% of requests`;
  }
  for (const gone of shown.values()) gone.remove();
  bar.setAttribute("aria-label", wanted.map((t) => `${t.revisionName} ${t.percent}%`).join(", ") || "no traffic");
  return bar;
}

export function splitBar(traffic) {
  return updateSplit(h("div", { class: "split", role: "img" }), traffic);
}

/** "iris-predictor-00002" as "#2": the revision's number says which. */
function shortRevision(name) {
  const number = /-(\d+)$/.exec(name || "");
  return number ? `#${Number(number[1])}` : name;
}

/** The component that answers a service's host: its transformer when it has one. */
function frontComponent(service) {
  const components = service.status?.components || {};
  return components.transformer ? "transformer" : "predictor";
}

/** A service's live figures, from its revisions': requests/s and errors summed over the front component's
 * revisions, the worst p50 and p99 among them, and replicas over every component. */
export function serviceFigures(service, live) {
  const components = service.status?.components || {};
  const front = (components[frontComponent(service)]?.traffic || []).map((t) => t.revisionName);
  const all = Object.values(components).flatMap((c) => (c.traffic || []).map((t) => t.revisionName));
  const figures = front.map((r) => live[r]).filter(Boolean);
  const sum = (field, of = figures) => of.reduce((total, f) => total + (f[field] || 0), 0);
  const max = (field) => figures.reduce((worst, f) => (f[field] != null && (worst == null || f[field] > worst) ? f[field] : worst), null);
  const requests = sum("requests");
  const replicas = service.status?.replicaStates || [];
  return {
    rps: sum("rps"),
    errorRatio: requests ? sum("errors") / requests : 0,
    p50Ms: max("p50Ms"),
    p99Ms: max("p99Ms"),
    ready: replicas.filter((r) => r.ready).length,
    desired: sum("desired", [...new Set(all)].map((r) => live[r]).filter(Boolean)),
  };
}
