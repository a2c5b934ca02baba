// The plan's DAG as SVG: one column per depth, steps coloured by state,
// the critical path drawn thick. Input: the `dag` of GET /v1/tasks/{id}/detail.

const SVG = "http://www.w3.org/2000/svg";
const NODE_W = 200;
const NODE_H = 46;
const GAP_X = 56;
const GAP_Y = 18;
const PAD = 12;

function el(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function clip(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function drawDag(dag) {
  const columns = new Map();
  for (const node of dag.nodes) {
    if (!columns.has(node.depth)) columns.set(node.depth, []);
    columns.get(node.depth).push(node);
  }
  const depthCount = Math.max(1, columns.size);
  const tallest = Math.max(1, ...[...columns.values()].map((c) => c.length));
  const width = PAD * 2 + depthCount * NODE_W + (depthCount - 1) * GAP_X;
  const height = PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y;
  const svg = el("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    class: "dag",
    "aria-label": `Plan with ${dag.nodes.length} steps; critical path ${dag.critical_path.join(" → ") || "none"}`,
  });
  const defs = el("defs");
  for (const [id, cls] of [["arrow", "edge"], ["arrow-critical", "edge critical"]]) {
    const marker = el("marker", {
      id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7,
      orient: "auto-start-reverse",
    });
    marker.append(el("path", { d: "M 0 0 L 10 5 L 0 10 z", class: `${cls} head` }));
    defs.append(marker);
  }
  svg.append(defs);
  const at = new Map();
  for (const [depth, nodes] of [...columns.entries()].sort((a, b) => a[0] - b[0])) {
    const offset = (height - PAD * 2 - (nodes.length * NODE_H + (nodes.length - 1) * GAP_Y)) / 2;
    nodes.forEach((node, i) => {
      at.set(node.step_id, {
        x: PAD + depth * (NODE_W + GAP_X),
        y: PAD + offset + i * (NODE_H + GAP_Y),
      });
    });
  }
  const edges = el("g", { class: "edges" });
  for (const edge of dag.edges) {
    const a = at.get(edge.from);
    const b = at.get(edge.to);
    if (!a || !b) continue;
    const x1 = a.x + NODE_W;
    const y1 = a.y + NODE_H / 2;
    const x2 = b.x - 2;
    const y2 = b.y + NODE_H / 2;
    const mid = (x1 + x2) / 2;
    edges.append(el("path", {
      d: `M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${y2}, ${x2} ${y2}`,
      class: edge.critical ? "edge critical" : "edge",
      "marker-end": `url(#${edge.critical ? "arrow-critical" : "arrow"})`,
    }));
  }
  svg.append(edges);
  for (const node of dag.nodes) {
    const { x, y } = at.get(node.step_id);
    const g = el("g", {
      class: `node st-${node.state}${node.critical ? " critical" : ""}`,
      "data-step": node.step_id,
      "data-state": node.state,
      "data-critical": node.critical ? "true" : "false",
      transform: `translate(${x} ${y})`,
    });
    const seconds = node.duration_s == null ? "" : ` · ${node.duration_s.toFixed(2)}s`;
    g.append(el("title", {}, `${node.step_id} (${node.role}): ${node.state}, ${node.attempts} attempt(s)${seconds}${node.critical ? ", on the critical path" : ""}\n${node.title}`));
    g.append(el("rect", { width: NODE_W, height: NODE_H, rx: 7 }));
    g.append(el("text", { x: 10, y: 18, class: "id" }, clip(node.step_id, 26)));
    g.append(el("text", { x: 10, y: 35, class: "sub" }, clip(`${node.role} · ${node.state}${seconds}`, 32)));
    svg.append(g);
  }
  return svg;
}
