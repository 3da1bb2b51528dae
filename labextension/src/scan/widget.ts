/**
 * The parameter-scan browser: folder + pattern → axes and a grid of the matching files.
 */
import { Dialog, InputDialog, showDialog } from '@jupyterlab/apputils';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { postJSON, requestAPI } from '../api';
import { renderFile } from './cells';
import {
  IAxis,
  IGrid,
  IMatch,
  ISaved,
  ISuggestion,
  Placement,
  buildGrid,
  mergePlacement,
  swapPlacement
} from './model';
import { el } from '../dom';

/** More cells than this and the browser slows to a crawl: show the first ones and say so. */
const MAX_CELLS = 400;

const show = (v: string | null) => (v === null ? '(none)' : v);

export class ScanBrowser extends Widget {
  private folderInput = el('input', 'jp-condorhub-folder');
  private patternInput = el('input', 'jp-condorhub-pattern');
  private presetSelect = el('select', 'jp-condorhub-presets');
  private savedSelect = el('select', 'jp-condorhub-saved');
  private messageBox = el('div', 'jp-condorhub-message');
  private axesBox = el('div', 'jp-condorhub-axes');
  private gridBox = el('div', 'jp-condorhub-grid');
  private match: IMatch | null = null;
  private placement: Record<string, Placement> = {};
  private saved: ISaved[] = [];
  private _stateChanged = new Signal<this, void>(this);

  constructor(
    folder: string,
    private open: (path: string) => void
  ) {
    super();
    this.addClass('jp-condorhub-scan');
    this.folderInput.value = folder;
    this.folderInput.placeholder = 'folder, relative to the Lab root';
    this.patternInput.placeholder =
      'e.g. lr_(?P<lr>[^/]+)/layers_(?P<layers>\\d+)/.*\\.png';
    this.patternInput.spellcheck = false;
    this.buildForm();
    this.node.append(this.messageBox, this.axesBox, this.gridBox);
  }

  get folder(): string {
    return this.folderInput.value.trim().replace(/^\/+|\/+$/g, '');
  }

  /** The pattern as typed (what a restored tab shows again). */
  get pattern(): string {
    return this.patternInput.value;
  }

  /** The folder or the pattern was applied: the Lab saves them so that a reload restores this tab. */
  get stateChanged(): ISignal<this, void> {
    return this._stateChanged;
  }

  private button(
    label: string,
    cls: string,
    action: () => void
  ): HTMLButtonElement {
    const b = el('button', `jp-mod-styled jp-condorhub-button ${cls}`, label);
    b.addEventListener('click', action);
    return b;
  }

  private buildForm(): void {
    const form = el('div', 'jp-condorhub-scan-form');
    const folderLabel = el('label', undefined, 'Folder ');
    folderLabel.appendChild(this.folderInput);
    const patternLabel = el('label', 'jp-condorhub-pattern-label', 'Pattern ');
    patternLabel.appendChild(this.patternInput);
    for (const input of [this.folderInput, this.patternInput]) {
      input.addEventListener('keydown', event => {
        if (event.key === 'Enter') {
          void (input === this.folderInput ? this.load() : this.apply());
        }
      });
    }
    this.presetSelect.addEventListener('change', () => {
      if (this.presetSelect.value) {
        this.patternInput.value = this.presetSelect.value;
        this.presetSelect.selectedIndex = 0;
        void this.apply();
      }
    });
    this.savedSelect.addEventListener('change', () => {
      const entry = this.saved.find(s => s.name === this.savedSelect.value);
      if (entry) {
        this.patternInput.value = entry.pattern;
        void this.apply();
      }
    });
    form.append(
      folderLabel,
      patternLabel,
      this.button('Show', 'jp-condorhub-apply', () => void this.apply()),
      this.presetSelect,
      this.savedSelect,
      this.button('Save…', 'jp-condorhub-save', () => void this.savePattern()),
      this.button(
        'Delete saved',
        'jp-condorhub-delete',
        () => void this.deletePattern()
      )
    );
    this.node.appendChild(form);
  }

  private say(text: string | null, error = false): void {
    this.messageBox.textContent = text ?? '';
    this.messageBox.classList.toggle('jp-condorhub-error', error);
  }

  /**
   * Open the folder: with `pattern` (a restored tab's), else its saved patterns (the last one applied),
   * else the suggestion.
   */
  async load(pattern?: string): Promise<void> {
    this.say('reading the folder…');
    try {
      const [suggestion, saved] = await Promise.all([
        requestAPI<ISuggestion>('scan/suggest', {}, { path: this.folder }),
        requestAPI<{ patterns: ISaved[] }>(
          'scan/patterns',
          {},
          { path: this.folder }
        )
      ]);
      this.fillPresets(suggestion);
      this.fillSaved(saved.patterns);
      const last = saved.patterns[saved.patterns.length - 1];
      if (pattern) {
        this.patternInput.value = pattern;
      } else {
        this.patternInput.value = last ? last.pattern : suggestion.pattern;
        if (last) {
          this.savedSelect.value = last.name;
        }
      }
    } catch (error) {
      this.say((error as Error).message, true);
      return;
    }
    await this.apply();
  }

  private fillPresets(suggestion: ISuggestion): void {
    const title = el('option', undefined, 'Presets…');
    title.value = ''; // picking the title itself changes nothing
    this.presetSelect.replaceChildren(title);
    for (const preset of suggestion.presets) {
      const option = el('option', undefined, preset.name);
      option.value = preset.pattern;
      option.title = preset.pattern;
      this.presetSelect.appendChild(option);
    }
  }

  private fillSaved(saved: ISaved[]): void {
    this.saved = saved;
    this.savedSelect.replaceChildren(
      el(
        'option',
        undefined,
        saved.length ? 'Saved patterns…' : '(nothing saved)'
      )
    );
    (this.savedSelect.firstChild as HTMLOptionElement).value = '';
    for (const entry of saved) {
      const option = el('option', undefined, entry.name);
      option.value = entry.name;
      option.title = entry.pattern;
      this.savedSelect.appendChild(option);
    }
  }

  /** Match the pattern and draw axes and grid. */
  async apply(): Promise<void> {
    this.say('matching…');
    try {
      this.match = await postJSON<IMatch>('scan/match', {
        path: this.folder,
        pattern: this.patternInput.value
      });
    } catch (error) {
      this.match = null;
      this.axesBox.replaceChildren();
      this.gridBox.replaceChildren();
      // The server's message is a sentence that says what to fix; an HTTP status adds nothing to it.
      this.say((error as Error).message, true);
      this._stateChanged.emit();
      return;
    } finally {
      this.title.label = `Scan: ${this.folder || '/'}`;
    }
    this._stateChanged.emit();
    this.placement = mergePlacement(this.match.axes, this.placement);
    this.render();
  }

  private render(): void {
    const match = this.match;
    if (!match) {
      return;
    }
    const grid = buildGrid(match.axes, match.files, this.placement);
    const summary = `${match.total_matches} of ${match.total_files} files match; ${grid.shown} in the grid.`;
    this.say(match.message ? `${summary} ${match.message}` : summary);
    this.renderAxes(match.axes);
    this.renderGrid(grid);
  }

  private renderAxes(axes: IAxis[]): void {
    const rows = axes.map(axis => {
      const row = el('div', 'jp-condorhub-axis');
      row.dataset.axis = axis.name;
      row.appendChild(el('span', 'jp-condorhub-axis-name', axis.name));
      const select = el('select', 'jp-condorhub-axis-place');
      const options: [string, string][] = [
        ['row', 'rows'],
        ['col', 'columns'],
        ...axis.values.map((v, i): [string, string] => [
          `fixed:${i}`,
          `= ${show(v)}`
        ])
      ];
      for (const [value, label] of options) {
        const option = el('option', undefined, label);
        option.value = value;
        select.appendChild(option);
      }
      const p = this.placement[axis.name];
      select.value =
        p.role === 'fixed' ? `fixed:${axis.values.indexOf(p.value)}` : p.role;
      select.addEventListener('change', () => {
        const v = select.value;
        this.placement[axis.name] = v.startsWith('fixed:')
          ? { role: 'fixed', value: axis.values[Number(v.slice(6))] }
          : { role: v as 'row' | 'col' };
        this.render();
      });
      row.appendChild(select);
      const values = axis.values.map(show).join(', ');
      row.appendChild(
        el(
          'span',
          'jp-condorhub-axis-values',
          `${axis.values.length} values${axis.numeric ? ' (numeric)' : ''}: ${values}`
        )
      );
      return row;
    });
    const swap = this.button(
      'Swap rows and columns',
      'jp-condorhub-swap',
      () => {
        this.placement = swapPlacement(this.placement);
        this.render();
      }
    );
    this.axesBox.replaceChildren(...rows, swap);
  }

  private renderGrid(grid: IGrid): void {
    const table = el('table', 'jp-condorhub-grid-table');
    const label = (names: string[], key: (string | null)[]) =>
      names.map((n, i) => `${n}=${show(key[i])}`).join(', ');
    const head = el('tr');
    head.appendChild(
      el(
        'th',
        'jp-condorhub-corner',
        `${grid.rowAxes.join(', ') || '–'} \\ ${grid.colAxes.join(', ') || '–'}`
      )
    );
    grid.cols.forEach(c =>
      head.appendChild(el('th', 'jp-condorhub-colhead', label(grid.colAxes, c)))
    );
    table.appendChild(head);
    const maxRows = Math.max(
      1,
      Math.floor(MAX_CELLS / Math.max(1, grid.cols.length))
    );
    grid.rows.slice(0, maxRows).forEach((r, ri) => {
      const tr = el('tr');
      tr.appendChild(el('th', 'jp-condorhub-rowhead', label(grid.rowAxes, r)));
      grid.cols.forEach((_, ci) => {
        const td = el('td', 'jp-condorhub-cell');
        td.dataset.row = String(ri);
        td.dataset.col = String(ci);
        for (const file of grid.cells.get(`${ri}|${ci}`) ?? []) {
          td.appendChild(renderFile(file, this.open));
        }
        tr.appendChild(td);
      });
      table.appendChild(tr);
    });
    this.gridBox.replaceChildren(table);
    if (grid.rows.length > maxRows) {
      this.gridBox.appendChild(
        el(
          'div',
          'jp-condorhub-more',
          `${grid.rows.length - maxRows} more rows not drawn: fix an axis to a value to see them.`
        )
      );
    }
  }

  private async savePattern(): Promise<void> {
    const result = await InputDialog.getText({
      title: `Save this pattern for ${this.folder || 'the root folder'}`,
      placeholder: 'name',
      text: this.savedSelect.value || ''
    });
    if (!result.button.accept || !result.value) {
      return;
    }
    try {
      const saved = await requestAPI<{ patterns: ISaved[] }>('scan/patterns', {
        method: 'PUT',
        body: JSON.stringify({
          path: this.folder,
          name: result.value,
          pattern: this.patternInput.value
        })
      });
      this.fillSaved(saved.patterns);
      this.savedSelect.value = result.value.trim();
      this.say(`saved as “${result.value.trim()}”`);
    } catch (error) {
      this.say((error as Error).message, true);
    }
  }

  private async deletePattern(): Promise<void> {
    const name = this.savedSelect.value;
    if (!name) {
      this.say('pick a saved pattern to delete', true);
      return;
    }
    const answer = await showDialog({
      title: 'Delete saved pattern',
      body: `Delete “${name}” for ${this.folder || 'the root folder'}?`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      const saved = await requestAPI<{ patterns: ISaved[] }>(
        'scan/patterns',
        { method: 'DELETE' },
        { path: this.folder, name }
      );
      this.fillSaved(saved.patterns);
    } catch (error) {
      this.say((error as Error).message, true);
    }
  }
}
