// The console's shell: sign-in, the header, and the views by the URL's fragment (#/services, #/services/NS/NAME,
// #/graph, #/monitoring, #/apply). Each view is `render(root, params, context)` and returns what stops it (its
// polling), called before the next view (or the same one again) renders: one view, and one poll of each kind, at a
// time. Data is polled from the API every 2 s at most, and nothing reloads the page.

import { api, paths, signIn, signOut, signedIn, takeTokenFromUrl } from "./api.js";
import { fill, h, toast } from "./dom.js";
import * as apply from "./apply.js";
import * as graph from "./graph.js";
import * as monitoring from "./monitoring.js";
import * as service from "./service.js";
import * as services from "./services.js";

const VIEWS = [
  [/^#\/services\/([^/]+)\/([^/]+)$/, service],
  [/^#\/graph$/, graph],
  [/^#\/monitoring$/, monitoring],
  [/^#\/apply$/, apply],
  [/^#\/(services)?$/, services],
];

const root = document.getElementById("view");
let stop = () => {};
let context = null;
let turn = 0; // which call of show() may render: only the latest (the fragment may change while one waits)

async function show() {
  const mine = ++turn;
  stop();
  stop = () => {};
  if (!signedIn()) return signInForm();
  if (!context) {
    let about;
    try {
      about = await api(paths.about);
    } catch (error) {
      if (mine === turn) signInForm(error.message);
      return;
    }
    if (mine !== turn) return; // a later call renders
    context = { ...about, admin: about.role === "admin" };
    fill(document.getElementById("who"), h("span", { class: `role ${context.role}` }, context.role === "admin" ? "admin" : "viewer (read only)"));
    document.getElementById("sign-out").hidden = false;
  }
  const hash = location.hash || "#/services";
  const [pattern, view] = VIEWS.find(([p]) => p.test(hash)) || VIEWS[VIEWS.length - 1];
  const params = (pattern.exec(hash) || []).slice(1).map((p) => (p ? decodeURIComponent(p) : p));
  for (const link of document.querySelectorAll("#nav a")) link.classList.toggle("active", hash.startsWith(link.getAttribute("href")));
  root.replaceChildren();
  stop = view.render(root, params, context) || (() => {});
}

function signInForm(problem) {
  document.getElementById("sign-out").hidden = true;
  fill(document.getElementById("who"));
  const input = h("input", { type: "password", name: "token", autocomplete: "off", placeholder: "token", required: true, size: 48 });
  const form = h(
    "form",
    {
      class: "sign-in card",
      onsubmit: (event) => {
        event.preventDefault();
        signIn(input.value);
        show();
      },
    },
    h("h1", {}, "Sign in"),
    h("p", {}, "Run ", h("code", {}, "wharf console"), " on the machine where ", h("code", {}, "wharf up"), " runs: it prints this page's address with a token. Or paste a token (", h("code", {}, "WHARF_HOME/credentials.json"), ": admin may change services, viewer only reads)."),
    problem ? h("p", { class: "error" }, problem) : null,
    h("label", {}, "Token ", input),
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  fill(root, form);
  input.focus();
}

window.addEventListener("hashchange", show);
window.addEventListener("wharf:signed-out", () => {
  context = null;
  toast("signed out");
  show();
});
document.getElementById("sign-out").addEventListener("click", () => signOut());
takeTokenFromUrl();
show();
