// An instance: header, actions (cancel, signal), the graph coloured by live inferred status, the
// timeline of node runs, the node table, signals (waiting and inbox), executions and the explain
// tree. Refreshed every second until the instance ends.
import { get, post, readOnly } from './api.js';
import { badge, duration, fill, h, isTerminal, link, table, textBlock, time } from './dom.js';
import { createGraph } from './graph.js';
import { poll } from './nav.js';
import { createTimeline } from './timeline.js';

const REFRESH_MS = 1000;

function section(title, ...children) {
  return h('section', { class: 'panel' }, h('h2', {}, title), ...children);
}

export function showInstance(main, id) {
  document.title = `pg_durable: ${id}`;
  const head = h('div', { class: 'head' });
  const error = h('p', { class: 'error', role: 'alert' });
  const actions = h('div', { class: 'actions' });
  const graphEl = h('div', { id: 'graph', class: 'graph' }, h('p', { class: 'muted' }, 'Loading…'));
  const runDetail = h('div', { class: 'run-detail muted' }, 'Select a bar to see the run.');
  const timelineEl = h('div', { id: 'timeline', class: 'timeline' });
  const nodesEl = h('div', { id: 'nodes' });
  const signalsEl = h('div', { id: 'signals' });
  const execEl = h('div', { id: 'executions' });
  const explainEl = h('pre', { id: 'explain', class: 'explain' });
  fill(main,
    h('p', { class: 'crumbs' }, link('/', '← instances')),
    head, error, actions,
    section('Graph', graphEl),
    section('Timeline', timelineEl, runDetail),
    section('Nodes', nodesEl),
    section('Signals', signalsEl),
    section('Executions', execEl),
    section('Explain', explainEl));

  const graph = createGraph(graphEl);
  const timeline = createTimeline(timelineEl, (run) => {
    if (!run) return fill(runDetail, 'Select a bar to see the run.');
    const ms = run.finished_at ? new Date(run.finished_at) - new Date(run.started_at) : null;
    fill(runDetail, h('span', { class: 'mono' }, run.stamp), ' ', badge(run.status), ` started ${time(run.started_at)}`,
      run.finished_at ? `, finished ${time(run.finished_at)} (${duration(ms)})` : ', still running');
  });

  let actionsFor = null; // the status the action panel was built for
  const message = h('p', { class: 'message', role: 'status' });
  const buildActions = (data) => {
    const status = data.instance.status;
    const key = `${status}|${data.signals.waiting.map((w) => w.signal_name).join(',')}`;
    if (actionsFor === key) return;
    actionsFor = key;
    if (readOnly) return fill(actions, h('p', { class: 'muted' }, 'Read-only dashboard: actions are disabled.'));
    if (isTerminal(status)) return fill(actions, message);
    const reason = h('input', { type: 'text', name: 'reason', placeholder: 'reason (optional)', 'aria-label': 'cancel reason' });
    const cancel = h('button', { type: 'button', class: 'danger', id: 'cancel' }, 'Cancel instance');
    cancel.addEventListener('click', async () => {
      if (!window.confirm(`Cancel instance ${id}?`)) return;
      await act(() => post(`/api/instances/${id}/cancel`, { reason: reason.value }));
    });
    const waitingNames = data.signals.waiting.map((w) => w.signal_name).filter((n) => n !== null);
    const name = h('input', { type: 'text', name: 'signal', id: 'signal-name', placeholder: 'signal name', 'aria-label': 'signal name', list: 'pgd-waiting', value: waitingNames[0] ?? '' });
    const payload = h('textarea', { name: 'payload', id: 'signal-payload', rows: 3, 'aria-label': 'signal payload (JSON)' });
    payload.value = '{}';
    const send = h('button', { type: 'submit', id: 'send-signal' }, 'Send signal');
    const form = h('form', { class: 'signal-form' }, h('datalist', { id: 'pgd-waiting' }, waitingNames.map((n) => h('option', { value: n }))),
      h('label', {}, 'Signal ', name), h('label', {}, 'payload (JSON) ', payload), send);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      let value;
      try {
        value = JSON.parse(payload.value);
      } catch (err) {
        fill(message, `The payload is not JSON: ${err.message}`);
        message.className = 'message error';
        return;
      }
      await act(() => post(`/api/instances/${id}/signal`, { name: name.value.trim(), payload: value }));
    });
    fill(actions, h('div', { class: 'action-row' }, form, h('div', { class: 'cancel-box' }, reason, cancel)), message);
  };
  const act = async (fn) => {
    try {
      const r = await fn();
      fill(message, r.result ?? 'done');
      message.className = 'message ok';
    } catch (err) {
      fill(message, err.message);
      message.className = 'message error';
    }
    poller.now();
  };

  let last = '';
  const tick = async () => {
    let data;
    try {
      data = await get(`/api/instances/${id}`);
    } catch (err) {
      fill(error, err.message);
      return err.status !== 404;
    }
    fill(error);
    const key = JSON.stringify(data);
    if (key !== last) {
      last = key;
      await render(data);
    } else if (!isTerminal(data.instance.status)) {
      await timeline.update(data.nodes, data.runs); // running bars grow with the clock
    }
    return !isTerminal(data.instance.status);
  };
  const render = async (data) => {
    const inst = data.instance;
    fill(head,
      h('h1', {}, 'Instance ', h('span', { class: 'mono' }, inst.id), inst.label !== null ? h('span', { class: 'label' }, inst.label) : null, badge(inst.status)),
      h('dl', { class: 'meta' },
        h('dt', {}, 'created'), h('dd', {}, time(inst.created_at)),
        h('dt', {}, 'completed'), h('dd', {}, time(inst.completed_at) || '—'),
        h('dt', {}, 'execution'), h('dd', {}, inst.execution ?? '—'),
        h('dt', {}, 'output'), h('dd', { id: 'output' }, textBlock(inst.output, 'value', false))));
    buildActions(data);
    fill(nodesEl, table([
      { title: 'node', class: 'mono', cell: (n) => n.node_id },
      { title: 'step', cell: (n) => n.label },
      { title: 'status', cell: (n) => badge(n.inferred_status) },
      { title: 'result / error', class: 'result', cell: (n) => textBlock(n.result) },
      { title: 'updated', cell: (n) => time(n.updated_at) },
    ], data.nodes));
    fill(signalsEl,
      data.signals.waiting.length
        ? h('ul', { class: 'waiting' }, data.signals.waiting.map((w) => h('li', {}, 'waiting for ', h('strong', { class: 'mono' }, w.signal_name ?? '?'),
          w.timeout_seconds ? ` (timeout ${w.timeout_seconds} s)` : '', w.since ? ` since ${time(w.since)}` : '')))
        : h('p', { class: 'muted' }, 'No signal wait in progress.'),
      table([
        { title: 'signal', class: 'mono', cell: (s) => s.signal_name },
        { title: 'payload', class: 'result', cell: (s) => textBlock(s.payload) },
        { title: 'sent', cell: (s) => time(s.sent_at) },
        { title: 'consumed', cell: (s) => (s.consumed_by ? 'yes' : 'waiting in the inbox') },
      ], data.signals.inbox, 'No signal sent to this instance.'));
    fill(execEl, table([
      { title: 'execution', class: 'num', cell: (e) => e.execution_id },
      { title: 'status', cell: (e) => e.status },
      { title: 'events', class: 'num', cell: (e) => e.event_count },
      { title: 'duration', cell: (e) => (e.duration_ms ? duration(Number(e.duration_ms)) : '') },
      { title: 'output', class: 'result', cell: (e) => textBlock(e.output) },
    ], data.executions));
    fill(explainEl, data.explain ?? '');
    try {
      await graph.update(data.mermaid);
    } catch (err) {
      fill(graphEl, h('p', { class: 'error' }, `Cannot draw the graph: ${err.message}`));
    }
    try {
      await timeline.update(data.nodes, data.runs);
    } catch (err) {
      fill(timelineEl, h('p', { class: 'error' }, `Cannot draw the timeline: ${err.message}`));
    }
  };
  const poller = poll(tick, REFRESH_MS);
  return poller;
}
