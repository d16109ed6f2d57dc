// The bandits of the InferenceGraphs that have Bandit nodes: per node its policy, and per arm whether it is ready,
// its pulls, mean reward, share of the traffic so far and its chance of the next request, from the control API
// (GET /apis/wharf.dev/v1/namespaces/NS/inferencegraphs/NAME/bandit), asked only for graphs with a Bandit node.

import { api, paths } from "./api.js";
import { fill, fmt, h } from "./dom.js";

const COLUMNS = ["Arm", "Service", "Ready", "Pulls", "Rewards", "Mean reward", "Share", "Next"];

/** The section, and what fills it from the list of graphs (hidden while no graph has a Bandit node). */
export function banditPanel() {
  const body = h("div");
  const section = h("section", { hidden: true, id: "bandits" }, h("h2", {}, "Bandits"), body);
  async function update(graphs) {
    const bandits = graphs.filter((g) => Object.values(g.spec?.nodes || {}).some((n) => n.routerType === "Bandit"));
    section.hidden = bandits.length === 0;
    const figures = await Promise.all(bandits.map((g) => api(paths.bandit(g.metadata.namespace || "default", g.metadata.name))));
    fill(body, figures.flatMap((graph) => Object.entries(graph.nodes).map(([node, bandit]) => table(graph.graph, node, bandit))));
  }
  return { section, update };
}

function table(graph, node, bandit) {
  const rows = bandit.arms.map((arm) =>
    h(
      "tr",
      { "data-arm": arm.name },
      [arm.name, arm.service, arm.ready ? "yes" : "no", arm.pulls, arm.rewards, fmt.num(arm.meanReward, 3), fmt.pct(arm.share), fmt.pct(arm.probability)].map((c) => h("td", {}, c)),
    ),
  );
  return h(
    "div",
    { class: "bandit" },
    h("h3", {}, `${graph} · ${node}: ${bandit.policy}, ${bandit.pulls} pulls`),
    h("table", { class: "grid" }, h("thead", {}, h("tr", {}, COLUMNS.map((c) => h("th", {}, c)))), h("tbody", {}, rows)),
  );
}
