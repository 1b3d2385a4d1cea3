// The timeline: a Gantt of node runs (df._node_runs, started_at -> finished_at) drawn with
// vis-timeline, one row per node; loop iterations, retry attempts and root executions are separate
// bars in the node's row, named in the bar. Contents are DOM text nodes, never HTML strings.
import { loadScript, loadStyle } from './dom.js';

function text(s, cls) {
  const span = document.createElement('span');
  if (cls) span.className = cls;
  span.textContent = s;
  return span;
}

// THEN nodes only chain steps: their bars would repeat the whole sequence's span.
const HIDDEN = new Set(['THEN']);

export function createTimeline(container, onSelect) {
  let timeline = null;
  let items = null;
  let groups = null;
  let userMoved = false;
  let runsById = new Map();
  return {
    async update(nodes, allRuns) {
      const hidden = new Set(nodes.filter((n) => HIDDEN.has(n.node_type)).map((n) => n.node_id));
      const runs = allRuns.filter((r) => !hidden.has(r.node_id));
      if (runs.length === 0) {
        if (!timeline) container.replaceChildren(text('No node has run yet.', 'muted'));
        return;
      }
      loadStyle('/vendor/vis-timeline-graph2d.min.css');
      await loadScript('/vendor/vis-timeline-graph2d.min.js');
      const vis = window.vis;
      const now = Date.now();
      const order = new Map(nodes.map((n, i) => [n.node_id, i]));
      const labels = new Map(nodes.map((n) => [n.node_id, n.label]));
      const used = [...new Set(runs.map((r) => r.node_id))].sort((a, b) => (order.get(a) ?? 1e9) - (order.get(b) ?? 1e9));
      const groupData = used.map((id) => ({ id, order: order.get(id) ?? 1e9, content: text(labels.get(id) ?? id, 'tl-group') }));
      runsById = new Map();
      const itemData = runs.map((r) => {
        const id = `${r.stamp}|${r.node_id}`;
        runsById.set(id, r);
        const start = new Date(r.started_at).getTime();
        const end = r.finished_at ? new Date(r.finished_at).getTime() : Math.max(now, start + 1);
        const mark = r.status === 'completed' ? '✓' : r.status === 'failed' ? '✗' : '⏳';
        return {
          id,
          group: r.node_id,
          start,
          end: Math.max(end, start + 1),
          type: 'range',
          className: `run-${r.status}`,
          content: text(r.label ? `${mark} ${r.label}` : mark),
        };
      });
      if (!timeline) {
        container.replaceChildren();
        items = new vis.DataSet(itemData);
        groups = new vis.DataSet(groupData);
        timeline = new vis.Timeline(container, items, groups, {
          stack: false,
          orientation: 'top',
          groupOrder: 'order',
          showCurrentTime: true,
          zoomMin: 10,
          margin: { item: 4 },
          tooltip: { followMouse: false },
        });
        timeline.on('rangechange', (p) => {
          if (p.byUser) userMoved = true;
        });
        timeline.on('select', (p) => onSelect?.(p.items.length ? runsById.get(p.items[0]) : null));
      } else {
        const keep = new Set(itemData.map((i) => i.id));
        items.remove(items.getIds().filter((id) => !keep.has(id)));
        items.update(itemData);
        const keepGroups = new Set(used);
        groups.remove(groups.getIds().filter((id) => !keepGroups.has(id)));
        groups.update(groupData);
      }
      if (!userMoved) timeline.fit({ animation: false });
    },
  };
}
