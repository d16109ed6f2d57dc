// Time charts over uPlot (vendored: /console/vendor/uPlot.iife.min.js, MIT) of the last hour: one line per series
// (with its samples as dots), times in Unix seconds, gaps where a value is missing; dashed lines for thresholds.

import { h } from "./dom.js";

/** A chart in a new element appended to `parent`; `update(lines, times)` draws `lines`
 * ([{label, colour, values, dash}]) over `times`, recreating the plot only when the lines change. */
export function timeChart(parent, title, unit) {
  const box = h("figure", { class: "chart" }, h("figcaption", {}, title));
  const area = h("div", { class: "plot", hidden: true });
  const empty = h("p", { class: "empty" }, "no samples yet");
  box.append(area, empty);
  parent.append(box);
  let plot = null;
  let shape = "";
  const resize = new ResizeObserver(() => plot && plot.setSize({ width: area.clientWidth, height: 160 }));
  resize.observe(area);

  function update(lines, times) {
    const has = times.length > 0 && lines.length > 0;
    empty.hidden = has;
    area.hidden = !has;
    if (!has) return;
    const key = lines.map((l) => `${l.label}|${l.colour}|${l.dash || ""}`).join(",");
    const data = [times, ...lines.map((l) => l.values)];
    if (plot && key === shape) return plot.setData(data);
    if (plot) plot.destroy();
    shape = key;
    plot = new window.uPlot(
      {
        width: area.clientWidth || 480,
        height: 160,
        legend: { live: false },
        scales: { x: { time: true, range: () => [Date.now() / 1000 - 3600, Date.now() / 1000] } },
        axes: [{}, { size: 56, values: (_, ticks) => ticks.map((t) => `${+t.toPrecision(3)}${unit}`) }],
        series: [
          {},
          ...lines.map((l) => ({ label: l.label, stroke: l.colour, width: l.dash ? 1 : 1.5, dash: l.dash, spanGaps: false, points: { show: !l.dash, size: 3, fill: l.colour } })),
        ],
      },
      data,
      area,
    );
  }

  return { update, element: box };
}

/** A threshold as a dashed line across `times`. */
export function threshold(label, value, times, colour = "#d94545") {
  return { label, colour, dash: [6, 4], values: times.map(() => value) };
}
