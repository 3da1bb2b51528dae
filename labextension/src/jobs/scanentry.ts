/**
 * A parameter scan in the Jobs panel: one entry for the whole cluster, with a grid of its points' states
 * (rows: the values of all parameters but the last; columns: the last one's) and the counts per state.
 */
import { IJob, IProfile } from './api';
import { button, el } from './dom';
import {
  baseName,
  isActive,
  profileName,
  stateCounts,
  stateWord,
  times
} from './format';
import { IEntryActions, stateBadge } from './entry';

/** The values of one parameter in the order the points first show them (the server's itemdata order). */
function valuesOf(points: IJob[], name: string): string[] {
  const seen: string[] = [];
  for (const p of points) {
    const v = p.scan?.params[name];
    if (v !== undefined && !seen.includes(v)) {
      seen.push(v);
    }
  }
  return seen;
}

/** The newest job of each point, in item order: a resubmitted point is a later cluster naming the scan. */
function latestPoints(jobs: IJob[]): IJob[] {
  const byPoint = new Map<string, IJob>();
  const ordered = [...jobs].sort(
    (a, b) => a.cluster - b.cluster || a.proc - b.proc
  );
  for (const job of ordered) {
    byPoint.set(JSON.stringify(job.scan?.params ?? {}), job); // a Map keeps the first insertion's place
  }
  return [...byPoint.values()];
}

/** The overall word for a scan: running while any point runs, then queued/held, else done or failed. */
function scanWord(words: string[]): string {
  for (const w of ['running', 'held', 'queued', 'suspended', 'failed']) {
    if (words.includes(w)) {
      return w;
    }
  }
  return words.every(w => w === 'removed') ? 'removed' : 'done';
}

/** Rows beyond this are left out of the panel's grid (the counts still cover every point). */
const MAX_ROWS = 20;

function grid(points: IJob[], actions: IEntryActions): HTMLElement {
  const names = Object.keys(points[0].scan?.params ?? {});
  const colName = names[names.length - 1];
  const rowNames = names.slice(0, -1);
  const cols = colName === undefined ? [''] : valuesOf(points, colName);
  const rowKey = (p: IJob) =>
    rowNames.map(n => `${n}=${p.scan?.params[n]}`).join(', ');
  const cellKey = (row: string, col: string) => `${row}\n${col}`;
  const cells = new Map<string, IJob>();
  const rows: string[] = [];
  for (const p of points) {
    const row = rowKey(p);
    if (!rows.includes(row)) {
      rows.push(row);
    }
    cells.set(
      cellKey(
        row,
        colName === undefined ? '' : (p.scan?.params[colName] ?? '')
      ),
      p
    );
  }
  const table = el('table', 'jp-condorhub-scan-grid');
  const head = el('tr');
  head.appendChild(
    el(
      'th',
      'jp-condorhub-scan-corner',
      colName === undefined ? '' : `${colName} →`
    )
  );
  cols.forEach(c => head.appendChild(el('th', 'jp-condorhub-scan-colhead', c)));
  table.appendChild(head);
  for (const r of rows.slice(0, MAX_ROWS)) {
    const tr = el('tr');
    tr.appendChild(el('th', 'jp-condorhub-scan-rowhead', r));
    for (const c of cols) {
      const point = cells.get(cellKey(r, c));
      const td = el('td', 'jp-condorhub-scan-point');
      if (point) {
        const word = stateWord(point);
        td.classList.add(`jp-condorhub-state-${word}`);
        td.dataset.id = point.id;
        td.dataset.state = word;
        const params = Object.entries(point.scan?.params ?? {})
          .map(([k, v]) => `${k}=${v}`)
          .join(', ');
        const exit =
          point.exit_code !== null ? `, exit code ${point.exit_code}` : '';
        td.title = `${params}: ${word}${exit} (job ${point.id}); click for its output`;
        td.addEventListener('click', () => actions.openOutput(point));
      }
      tr.appendChild(td);
    }
    table.appendChild(tr);
  }
  const box = el('div', 'jp-condorhub-scan-gridbox');
  box.appendChild(table);
  if (rows.length > MAX_ROWS) {
    box.appendChild(
      el(
        'div',
        'jp-condorhub-scan-more',
        `${rows.length - MAX_ROWS} more rows; the scan browser shows them all.`
      )
    );
  }
  return box;
}

export function renderScan(
  cluster: number,
  jobs: IJob[],
  profiles: IProfile[],
  actions: IEntryActions
): HTMLElement {
  const points = latestPoints(jobs);
  const words = points.map(stateWord);
  const word = scanWord(words);
  const first = points[0];
  const node = el(
    'div',
    `jp-condorhub-job jp-condorhub-scan-entry jp-condorhub-state-${word}`
  );
  node.dataset.cluster = String(cluster);
  node.dataset.state = word;

  const head = el('div', 'jp-condorhub-job-head');
  const name = el(
    'span',
    'jp-condorhub-job-name',
    `${first.file ? baseName(first.file) : first.name}: scan`
  );
  name.title = `${first.file ?? first.name}: open the scan browser on its folder`;
  name.addEventListener('click', () => actions.openScan(cluster, points));
  head.append(
    stateBadge(word),
    name,
    el('span', 'jp-condorhub-job-id', String(cluster))
  );
  const info = el(
    'div',
    'jp-condorhub-job-info',
    `${profileName(first.profile, profiles)} · ${times(first)}`
  );
  // The counts double as the grid's legend: a swatch of each state's colour before its count.
  const counts = el(
    'div',
    'jp-condorhub-scan-counts',
    `${points.length} points:`
  );
  for (const [state, n] of stateCounts(words)) {
    const count = el(
      'span',
      `jp-condorhub-scan-count jp-condorhub-state-${state}`,
      ` ${n} ${state}`
    );
    count.prepend(el('span', 'jp-condorhub-swatch'));
    counts.appendChild(count);
  }
  const bar = el('div', 'jp-condorhub-job-actions');
  bar.appendChild(
    button(
      'Open in scan browser',
      'jp-condorhub-scan-open',
      () => actions.openScan(cluster, points),
      'Browse its result files as a grid'
    )
  );
  if (points.some(isActive)) {
    bar.appendChild(
      button(
        'Cancel scan',
        'jp-condorhub-scan-remove',
        () => actions.cancelScan(cluster, points.filter(isActive)),
        'Remove its points that have not finished'
      )
    );
  }
  node.append(head, info, counts, grid(points, actions), bar);
  return node;
}
