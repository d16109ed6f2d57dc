// Apply: paste or upload KServe YAML (or JSON), check it (the API's dry run: every check, nothing stored) and apply
// it. The API names each problem by its field path ("spec.predictor.minReplicas: ..."); each is listed with the
// line of the manifest it points at, and clicking it selects that line.

import { api, paths } from "./api.js";
import { fill, h, toast } from "./dom.js";

const PLACEHOLDER = `apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: iris
spec:
  predictor:
    model:
      modelFormat: {name: sklearn}
      storageUri: examples/iris/model.joblib`;

export function render(root, _params, context) {
  const text = h("textarea", { id: "manifest", rows: 22, spellcheck: "false", placeholder: PLACEHOLDER });
  const file = h("input", { type: "file", accept: ".yaml,.yml,.json", id: "manifest-file" });
  const outcome = h("div", { id: "apply-outcome", "aria-live": "polite" });
  const disabled = !context.admin;
  const why = disabled ? "the viewer token may only read" : undefined;
  file.onchange = async () => {
    if (file.files[0]) text.value = await file.files[0].text();
  };
  const send = async (dryRun) => {
    text.classList.remove("invalid");
    fill(outcome, "…");
    try {
      const answer = await api(paths.apply(dryRun), { method: "POST", body: text.value, type: "application/yaml" });
      fill(
        outcome,
        h("p", { class: "ok" }, dryRun ? "Valid. Applying would do this:" : "Applied:"),
        h(
          "ul",
          { class: "results" },
          answer.results.map((r) =>
            h(
              "li",
              {},
              `${r.kind} ${r.namespace}/${r.name}: ${r.result}`,
              r.kind === "InferenceService" && !dryRun ? [" ", h("a", { href: `#/services/${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.name)}` }, "open")] : null,
              (r.warnings || []).map((w) => h("div", { class: "warning" }, w)),
            ),
          ),
        ),
      );
      if (!dryRun) toast("applied");
    } catch (error) {
      text.classList.add("invalid");
      fill(outcome, h("p", { class: "error" }, dryRun ? "Not valid:" : "Not applied:"), h("ul", { class: "problems" }, problems(error.message).map((p) => problemItem(p, text))));
    }
  };
  root.append(
    h("h1", {}, "Apply"),
    h("p", {}, "Paste or upload InferenceServices and InferenceGraphs in KServe's YAML (several documents, separated by ---). Check them first, or apply: an unchanged resource stays as it is."),
    h("div", { class: "row" }, file),
    text,
    h(
      "div",
      { class: "row" },
      h("button", { id: "validate", disabled, title: why, onclick: () => send(true) }, "Check"),
      h("button", { id: "apply", class: "primary", disabled, title: why, onclick: () => send(false) }, "Apply"),
    ),
    outcome,
  );
  return () => {};
}

/** The problems of an error message: "N problems:\n  PATH: REASON\n  ..." or one "PATH: REASON"; a path may follow
 * "KIND NS/NAME: " when the manifest holds several documents. */
export function problems(message) {
  const lines = message.split("\n");
  const listed = /^\d+ problems:$/.test(lines[0]) ? lines.slice(1).map((l) => l.trim()) : [message];
  return listed.map((line) => {
    const found = /^(?:(InferenceService|InferenceGraph) ([^\s/]+)\/(\S+): )?((?:[A-Za-z_][\w-]*|\[\d+\]|\["[^"]*"\]|\.)+): (.*)$/s.exec(line);
    if (!found || !/^[A-Za-z_]/.test(found[4])) return { reason: line };
    return { kind: found[1], name: found[3], path: found[4], reason: found[5] };
  });
}

function problemItem(problem, text) {
  if (!problem.path) return h("li", {}, problem.reason);
  const line = lineOf(text.value, problem.path, problem.name);
  return h(
    "li",
    {},
    h(
      "button",
      {
        class: "link",
        type: "button",
        title: "select the line",
        onclick: () => selectLine(text, line),
      },
      line === null ? "" : `line ${line + 1} · `,
      h("code", { class: "path" }, problem.path),
    ),
    `: ${problem.reason}`,
  );
}

function selectLine(text, line) {
  if (line === null) return text.focus();
  const lines = text.value.split("\n");
  const start = lines.slice(0, line).reduce((n, l) => n + l.length + 1, 0);
  text.focus();
  text.setSelectionRange(start, start + lines[line].length);
}

/** The line (0-based) of block-style YAML `source` that a field path points at, or the nearest line above it that
 * the path reaches; null when not even its first key is found. In a multi-document source, the document named
 * `name` (else the first). A heuristic, not a YAML parser: flow-style values ({...}, [...]) end the search. */
export function lineOf(source, path, name) {
  const lines = source.split("\n");
  const starts = [0, ...lines.flatMap((l, i) => (/^---/.test(l) ? [i + 1] : []))];
  const ends = [...starts.slice(1).map((start) => start - 1), lines.length];
  const named = name ? starts.findIndex((start, d) => lines.slice(start, ends[d]).some((l) => l.trim().replace(/["']/g, "") === `name: ${name}`)) : -1;
  const doc = Math.max(0, named);
  const keys = [...path.matchAll(/([A-Za-z_][\w-]*)|\[(\d+)\]|\["([^"]*)"\]/g)].map((m) => (m[2] !== undefined ? Number(m[2]) : m[1] ?? m[3]));
  let from = starts[doc];
  let indent = -1; // what a line must be deeper than to belong to the node found last
  let found = null;
  for (const key of keys) {
    const hit = typeof key === "number" ? item(lines, from, ends[doc], indent, key) : field(lines, from, ends[doc], indent, key);
    if (!hit) break;
    [found, indent] = hit;
    from = typeof key === "number" ? found : found + 1; // an item's first key is on its own line
  }
  return found;
}

const isItem = (line) => /^\s*- /.test(line);
const depthOf = (line) => line.search(/\S/);

/** [line, indent] of the key `key` among the lines of the node that begins at `from`. */
function field(lines, from, to, indent, key) {
  const pattern = new RegExp(`^\\s*(- )?["']?${key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}["']?\\s*:`);
  for (let i = from; i < to; i++) {
    const line = lines[i];
    if (!line.trim() || line.trim().startsWith("#")) continue;
    const depth = depthOf(line);
    if (i > from && depth <= indent) return null;
    const keyDepth = isItem(line) ? depth + 2 : depth;
    if (keyDepth > indent && pattern.test(line)) return [i, keyDepth];
  }
  return null;
}

/** [line, indent] of the `index`th item of the list that begins at `from` (items may sit at their key's depth). */
function item(lines, from, to, indent, index) {
  let itemDepth = null;
  let count = 0;
  for (let i = from; i < to; i++) {
    const line = lines[i];
    if (!line.trim() || line.trim().startsWith("#")) continue;
    const depth = depthOf(line);
    if (depth < indent || (depth === indent && !isItem(line))) return null;
    if (!isItem(line)) continue;
    itemDepth ??= depth;
    if (depth !== itemDepth) continue;
    if (count++ === index) return [i, depth + 1];
  }
  return null;
}
