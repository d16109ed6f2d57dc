// The control API, with the token the console was given. The token comes in the URL's fragment
// (`wharf console` prints http://HOST:PORT/#token=...: a fragment never leaves the browser), is kept in
// sessionStorage (this tab only, gone when it closes) and removed from the address bar at once; or it is pasted in
// the sign-in form.

const KEY = "wharf.token";
const KSERVE = "/apis/serving.kserve.io";
const WHARF = "/apis/wharf.dev/v1";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Move a token from the URL's fragment to the session; whether there was one. */
export function takeTokenFromUrl() {
  const found = /^#token=([^&]+)/.exec(location.hash);
  if (!found) return false;
  sessionStorage.setItem(KEY, decodeURIComponent(found[1]));
  history.replaceState(null, "", `${location.pathname}#/services`);
  return true;
}

export const signedIn = () => Boolean(sessionStorage.getItem(KEY));
export const signIn = (token) => sessionStorage.setItem(KEY, token.trim());
export function signOut() {
  sessionStorage.removeItem(KEY);
  window.dispatchEvent(new Event("wharf:signed-out"));
}

/** Call the API: JSON answers are parsed (`text`: the answer as text); an error answer throws ApiError with its
 * `{"error"}` message, and a 401 signs out. */
export async function api(path, { method = "GET", body, type = "application/json", text = false, headers = {} } = {}) {
  const sent = { authorization: `Bearer ${sessionStorage.getItem(KEY) || ""}`, ...headers };
  if (body !== undefined) sent["content-type"] = type;
  const answer = await fetch(path, { method, headers: sent, body, cache: "no-store" });
  if (!answer.ok) {
    let message = `${answer.status} ${answer.statusText}`;
    try {
      message = (await answer.json()).error || message;
    } catch {
      /* not JSON: the status says it */
    }
    if (answer.status === 401) signOut();
    throw new ApiError(answer.status, message);
  }
  return text ? answer.text() : answer.json();
}

const isvc = (ns, name) => `${KSERVE}/v1beta1/namespaces/${encodeURIComponent(ns)}/inferenceservices/${encodeURIComponent(name)}`;
const wharfIsvc = (ns, name) => `${WHARF}/namespaces/${encodeURIComponent(ns)}/inferenceservices/${encodeURIComponent(name)}`;

/** The paths the console reads and writes. */
export const paths = {
  about: `${WHARF}/console`,
  services: `${KSERVE}/v1beta1/inferenceservices`,
  graphs: `${KSERVE}/v1alpha1/inferencegraphs`,
  service: isvc,
  events: (ns, name) => `${isvc(ns, name)}/events`,
  log: (ns, name, component, tail) => `${isvc(ns, name)}/log?component=${component}&tailLines=${tail}`,
  promote: (ns, name) => `${isvc(ns, name)}/promote`,
  rollback: (ns, name) => `${isvc(ns, name)}/rollback`,
  revisions: (ns, name) => `${wharfIsvc(ns, name)}/revisions`,
  infer: (ns, name, protocol, verb) => `${wharfIsvc(ns, name)}/infer?protocol=${protocol}&verb=${verb}`,
  live: `${WHARF}/revisions`,
  history: (params) => `${WHARF}/history?${params}`,
  monitor: (path) => `${WHARF}/monitor/${path}`,
  serviceGraph: `${WHARF}/servicegraph`,
  bandit: (ns, name) => `${WHARF}/namespaces/${encodeURIComponent(ns)}/inferencegraphs/${encodeURIComponent(name)}/bandit`,
  apply: (dryRun) => `/apis/apply${dryRun ? "?dryRun=All" : ""}`,
};
