/**
 * One grid cell: shows a file the way the browser can (image, PDF, sandboxed HTML, JSON/CSV/text).
 */
import { fileURL, readText } from '../api';
import { IScanFile } from './model';
import { el } from '../dom';

/** Text previews are read through the contents API; cap what one cell pulls. */
const TEXT_LIMIT = 20000;
const TABLE_ROWS = 12;
/** Files shown in frames come from here: the server's /files/ may not be framed behind JupyterHub. */
const FRAME_ROUTE = 'condorhub/scan/file';

function csvTable(text: string, separator: string): HTMLElement {
  const table = el('table', 'jp-condorhub-csv');
  const lines = text
    .split(/\r?\n/)
    .filter(l => l.length > 0)
    .slice(0, TABLE_ROWS + 1);
  lines.forEach((line, i) => {
    const tr = el('tr');
    for (const value of line.split(separator)) {
      tr.appendChild(
        el(i === 0 ? 'th' : 'td', undefined, value.replace(/^"|"$/g, ''))
      );
    }
    table.appendChild(tr);
  });
  return table;
}

async function fillText(body: HTMLElement, file: IScanFile): Promise<void> {
  const loading = el('div', 'jp-condorhub-loading', 'loading…');
  body.appendChild(loading);
  try {
    const text = await readText(file.path, TEXT_LIMIT);
    loading.remove();
    if (file.kind === 'csv') {
      body.appendChild(
        csvTable(text, file.path.toLowerCase().endsWith('.tsv') ? '\t' : ',')
      );
      return;
    }
    let shown = text;
    if (file.kind === 'json') {
      try {
        shown = JSON.stringify(JSON.parse(text), null, 1);
      } catch {
        shown = text; // truncated or not JSON: show as it is
      }
    }
    body.appendChild(el('pre', 'jp-condorhub-text', shown));
  } catch (error) {
    loading.textContent = String((error as Error).message ?? error);
  }
}

/** The cell content for one file; `open` opens it in a Lab tab. */
export function renderFile(
  file: IScanFile,
  open: (path: string) => void
): HTMLElement {
  const box = el('div', `jp-condorhub-file jp-condorhub-kind-${file.kind}`);
  box.title = `${file.relative} — click to open`;
  box.dataset.path = file.path;
  const body = el('div', 'jp-condorhub-file-body');
  box.appendChild(body);
  switch (file.kind) {
    case 'image': {
      const img = el('img');
      img.loading = 'lazy';
      img.alt = file.relative;
      img.src = fileURL(file.path);
      body.appendChild(img);
      break;
    }
    case 'pdf': {
      // Sandboxed too, by the server's `Content-Security-Policy: sandbox` (a PDF may carry JavaScript):
      // Chromium's PDF viewer will not load in a frame with the sandbox attribute, but does under the header.
      const frame = el('iframe');
      frame.src = fileURL(file.path, FRAME_ROUTE);
      body.appendChild(frame);
      break;
    }
    case 'html': {
      // A result's HTML is not trusted: no scripts, no access to the Lab (sandbox without exceptions; the
      // server's response says the same).
      const frame = el('iframe');
      frame.setAttribute('sandbox', '');
      frame.src = fileURL(file.path, FRAME_ROUTE);
      body.appendChild(frame);
      break;
    }
    case 'json':
    case 'csv':
    case 'text':
      void fillText(body, file);
      break;
    default:
      body.appendChild(
        el('div', 'jp-condorhub-other', file.relative.split('/').pop())
      );
  }
  const caption = el(
    'div',
    'jp-condorhub-caption',
    file.relative.split('/').pop()
  );
  box.appendChild(caption);
  // Frames swallow clicks, so the caption (and images) open the file.
  box.addEventListener('click', () => open(file.path));
  return box;
}
