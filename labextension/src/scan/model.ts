/**
 * The scan API's answers and the grid built from them (pure functions, no DOM).
 */

export interface IAxis {
  name: string;
  numeric: boolean;
  values: (string | null)[];
}

export interface IScanFile {
  path: string; // relative to the server root: opens in Lab, loads from /files/
  relative: string; // relative to the scan folder
  params: Record<string, string | null>;
  kind: 'image' | 'pdf' | 'html' | 'json' | 'csv' | 'text' | 'other';
  size: number;
}

export interface IMatch {
  path: string;
  pattern: string;
  axes: IAxis[];
  files: IScanFile[];
  total_files: number;
  total_matches: number;
  offset: number;
  truncated: boolean;
  message: string | null;
}

export interface ISuggestion {
  path: string;
  pattern: string;
  presets: { name: string; pattern: string }[];
}

export interface ISaved {
  name: string;
  pattern: string;
  saved: string;
}

/** Where an axis goes: on the grid's rows, its columns, or fixed to one value. */
export type Placement =
  { role: 'row' } | { role: 'col' } | { role: 'fixed'; value: string | null };

export interface IGrid {
  rowAxes: string[];
  colAxes: string[];
  rows: (string | null)[][]; // one key (a value per row axis) per row
  cols: (string | null)[][];
  cells: Map<string, IScanFile[]>; // `${row}|${col}` indices
  shown: number; // files placed in the grid
}

/** Default placement: the first axis on rows, the second on columns, the others fixed to their first value. */
export function defaultPlacement(axes: IAxis[]): Record<string, Placement> {
  const placement: Record<string, Placement> = {};
  axes.forEach((axis, i) => {
    placement[axis.name] =
      i === 0
        ? { role: 'row' }
        : i === 1
          ? { role: 'col' }
          : { role: 'fixed', value: axis.values[0] ?? null };
  });
  return placement;
}

/** Keep what the user chose for axes that still exist; place new axes by default. */
export function mergePlacement(
  axes: IAxis[],
  previous: Record<string, Placement>
): Record<string, Placement> {
  const fresh = defaultPlacement(axes);
  for (const axis of axes) {
    const old = previous[axis.name];
    if (old && (old.role !== 'fixed' || axis.values.includes(old.value))) {
      fresh[axis.name] = old;
    }
  }
  return fresh;
}

/** Rows become columns and columns rows. */
export function swapPlacement(
  placement: Record<string, Placement>
): Record<string, Placement> {
  const swapped: Record<string, Placement> = {};
  for (const [name, p] of Object.entries(placement)) {
    swapped[name] =
      p.role === 'row'
        ? { role: 'col' }
        : p.role === 'col'
          ? { role: 'row' }
          : p;
  }
  return swapped;
}

function product(lists: (string | null)[][]): (string | null)[][] {
  return lists.reduce<(string | null)[][]>(
    (acc, values) => acc.flatMap(prefix => values.map(v => [...prefix, v])),
    [[]]
  );
}

const keyOf = (values: (string | null)[]) => JSON.stringify(values);

/** The grid: rows × columns of the placed axes, each cell the files with those values and the fixed ones. */
export function buildGrid(
  axes: IAxis[],
  files: IScanFile[],
  placement: Record<string, Placement>
): IGrid {
  const rowAxes = axes.filter(a => placement[a.name]?.role === 'row');
  const colAxes = axes.filter(a => placement[a.name]?.role === 'col');
  const fixed = axes.filter(a => placement[a.name]?.role === 'fixed');
  const rows = product(rowAxes.map(a => a.values));
  const cols = product(colAxes.map(a => a.values));
  const rowIndex = new Map(rows.map((r, i) => [keyOf(r), i]));
  const colIndex = new Map(cols.map((c, i) => [keyOf(c), i]));
  const cells = new Map<string, IScanFile[]>();
  let shown = 0;
  for (const file of files) {
    if (
      !fixed.every(
        a =>
          file.params[a.name] ===
          (placement[a.name] as { value: string | null }).value
      )
    ) {
      continue;
    }
    const r = rowIndex.get(keyOf(rowAxes.map(a => file.params[a.name])));
    const c = colIndex.get(keyOf(colAxes.map(a => file.params[a.name])));
    if (r === undefined || c === undefined) {
      continue;
    }
    const key = `${r}|${c}`;
    const list = cells.get(key) ?? [];
    list.push(file);
    cells.set(key, list);
    shown++;
  }
  return {
    rowAxes: rowAxes.map(a => a.name),
    colAxes: colAxes.map(a => a.name),
    rows,
    cols,
    cells,
    shown
  };
}
