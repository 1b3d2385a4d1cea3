// The instance list: filters (status, label), counts by status, newest first, keyset pages through
// df.list_instances' cursor, refreshed every 2 seconds.
import { get } from './api.js';
import { badge, fill, h, link, table, time } from './dom.js';
import { navigate, poll } from './nav.js';

const STATUSES = ['pending', 'running', 'completed', 'failed', 'cancelled'];
const REFRESH_MS = 2000;

function hrefWith(params, changes) {
  const q = new URLSearchParams(params);
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === '') q.delete(k);
    else q.set(k, v);
  }
  const s = q.toString();
  return s ? `/?${s}` : '/';
}

export function showList(main, params) {
  const status = params.get('status') ?? '';
  const label = params.get('label') ?? '';
  const after = params.get('after') ?? '';
  document.title = 'pg_durable: instances';

  const countsEl = h('nav', { class: 'counts', 'aria-label': 'counts by status' });
  const body = h('div', { id: 'instances' }, h('p', { class: 'muted' }, 'Loading…'));
  const pager = h('div', { class: 'pager' });
  const error = h('p', { class: 'error', role: 'alert' });
  const labelInput = h('input', { type: 'search', name: 'label', placeholder: 'label (exact)', value: label, 'aria-label': 'label filter' });
  const statusSelect = h('select', { name: 'status', 'aria-label': 'status filter' },
    h('option', { value: '' }, 'any status'),
    STATUSES.map((s) => h('option', { value: s, selected: s === status }, s)));
  const apply = (e) => {
    e?.preventDefault();
    navigate(hrefWith({}, { status: statusSelect.value, label: labelInput.value.trim() }));
  };
  statusSelect.addEventListener('change', apply);
  const form = h('form', { class: 'filters', onsubmit: apply }, statusSelect, labelInput, h('button', { type: 'submit' }, 'Filter'),
    status || label ? link('/', 'clear') : null);

  fill(main, h('h1', {}, 'Instances'), form, countsEl, error, body, pager);

  let last = '';
  const tick = async () => {
    const data = await get('/api/instances', { status, label, after, limit: 50 });
    const key = JSON.stringify(data);
    if (key === last) return true;
    last = key;
    fill(error);
    const total = STATUSES.reduce((n, s) => n + (data.counts[s] ?? 0), 0);
    fill(countsEl,
      link(hrefWith({}, { label }), h('span', { class: `count all${status === '' ? ' active' : ''}` }, `all ${total}`)),
      STATUSES.map((s) => link(hrefWith({}, { label, status: s }), h('span', { class: `count ${s}${status === s ? ' active' : ''}` }, `${s} ${data.counts[s] ?? 0}`))));
    fill(body, table([
      { title: 'instance', class: 'mono', cell: (r) => link(`/i/${r.instance_id}`, r.instance_id) },
      { title: 'label', cell: (r) => r.label ?? '' },
      { title: 'status', cell: (r) => badge(r.status) },
      { title: 'executions', class: 'num', cell: (r) => r.execution_count ?? '' },
      { title: 'created', cell: (r) => time(r.created_at) },
      { title: 'completed', cell: (r) => time(r.completed_at) },
      { title: 'output', class: 'mono out', cell: (r) => r.output ?? '' },
    ], data.rows, status || label ? 'No instances match these filters.' : 'No instances yet: start one with df.start(...).'));
    fill(pager,
      after ? link(hrefWith({}, { status, label }), '⇤ newest') : null,
      data.next ? link(hrefWith({}, { status, label, after: data.next }), 'older →') : null);
    return true;
  };
  return poll(() => tick().catch((err) => {
    fill(error, err.message);
    throw err;
  }), REFRESH_MS);
}
