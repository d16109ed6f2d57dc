// Building the page: elements from data (text is always set as text, never parsed as HTML), number formats,
// polling, the confirmation dialog and the toast.

/** An element: h("a", {href: "#"}, "text", child, ...). Attributes starting with "on" are listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElementNS(tag === "svg" || attrs.svg ? SVG : HTML, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false || name === "svg") continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** An SVG element (h with the SVG namespace). */
export const s = (tag, attrs = {}, ...children) => h(tag, { ...attrs, svg: true }, ...children);

const HTML = "http://www.w3.org/1999/xhtml";
const SVG = "http://www.w3.org/2000/svg";

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace what `el` holds with `children`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const fmt = {
  num(value, digits = 1) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    return Math.abs(value) >= 100 ? Math.round(value).toString() : value.toFixed(digits).replace(/\.0+$/, "");
  },
  pct(ratio) {
    return ratio === null || ratio === undefined ? "–" : `${fmt.num(ratio * 100, 1)}%`;
  },
  ms(value) {
    if (value === null || value === undefined) return "–";
    return value >= 1000 ? `${fmt.num(value / 1000, 2)} s` : `${fmt.num(value, value < 10 ? 2 : 1)} ms`;
  },
  ago(seconds) {
    const s = Math.max(0, Date.now() / 1000 - seconds);
    if (s < 60) return `${Math.round(s)}s ago`;
    if (s < 3600) return `${Math.round(s / 60)}m ago`;
    if (s < 86400) return `${Math.round(s / 3600)}h ago`;
    return `${Math.round(s / 86400)}d ago`;
  },
};

/** Run `task` now and every `ms` while the page is visible (never two at once); returns the function that stops it. */
export function poll(task, ms) {
  let stopped = false;
  let timer = null;
  const run = async () => {
    timer = null;
    if (stopped) return;
    if (!document.hidden) {
      try {
        await task();
      } catch (error) {
        if (!stopped) toast(error.message, "error");
      }
    }
    if (!stopped) timer = setTimeout(run, ms);
  };
  run();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}

/** Ask the user to confirm `text`; resolves to true when they do. */
export function confirmAction(text, action = "Confirm") {
  const dialog = document.getElementById("confirm");
  fill(document.getElementById("confirm-text"), text);
  document.getElementById("confirm-ok").textContent = action;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true }));
}

let toastTimer = null;
/** A short message at the bottom of the page. */
export function toast(message, kind = "info") {
  const el = document.getElementById("toast");
  el.className = `show ${kind}`;
  el.textContent = message;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (el.className = ""), kind === "error" ? 8000 : 3000);
}

/** A Ready condition's badge: "Ready", or "Not ready" with its reason beside it. */
export function readiness(resource) {
  const ready = (resource.status?.conditions || []).find((c) => c.type === "Ready");
  if (!ready) return h("span", { class: "badge wait" }, "Unknown");
  if (ready.status === "True") return h("span", { class: "badge ok" }, "Ready");
  return h("span", { class: "not-ready" }, h("span", { class: "badge bad" }, "Not ready"), " ", h("span", { class: "reason" }, ready.message || ""));
}
