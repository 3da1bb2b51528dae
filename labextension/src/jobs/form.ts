/**
 * The body of the submit dialog: profile, arguments or parameters, output folder, and the submit
 * description the server would use (POST jobs/preview or scans/preview), which can be saved as a .sub
 * file next to the submitted one. What the user typed is kept per file, so the dialog opens again with it.
 */
import { Widget } from '@lumino/widgets';

import { IProfile, IScanSubmit, ISubmit, previewJob, previewScan } from './api';
import { button, el } from './dom';
import { resources } from './format';
import { parseGrid, parseParameters } from './params';

export type Mode = 'job' | 'scan';

/** What the user typed, kept between openings of the dialog (per file and mode). */
interface IInput {
  profile: string;
  arguments: string;
  parameters: string;
  grid: string;
  folder: string;
}

const remembered = new Map<string, IInput>();
let lastProfile = '';

const PREVIEW_DELAY_MS = 400;

export const kindOf = (path: string) =>
  path.endsWith('.ipynb')
    ? 'notebook'
    : path.endsWith('.sh')
      ? 'shell script'
      : 'Python script';

/** Writes a text file through the contents API, refusing to replace one (the caller picks a free name). */
export interface ITextFiles {
  exists(path: string): Promise<boolean>;
  save(path: string, text: string): Promise<void>;
}

export class SubmitForm extends Widget {
  private profileBox = el('div', 'jp-condorhub-submit-profiles');
  private argumentsInput = el('input', 'jp-condorhub-submit-arguments');
  private parametersInput = el('textarea', 'jp-condorhub-submit-parameters');
  private gridInput = el('textarea', 'jp-condorhub-submit-grid');
  private folderInput = el('input', 'jp-condorhub-submit-folder');
  private countLine = el('div', 'jp-condorhub-submit-count');
  private errorBox = el('div', 'jp-condorhub-submit-error');
  private details = el('details', 'jp-condorhub-submit-description');
  private descriptionText = el('pre', 'jp-condorhub-submit-description-text');
  private savedLine = el('div', 'jp-condorhub-submit-saved');
  private previewTimer = 0;
  private previewSeq = 0;
  private description = '';

  constructor(
    readonly path: string,
    readonly mode: Mode,
    private profiles: IProfile[],
    private files: ITextFiles
  ) {
    super();
    this.addClass('jp-condorhub-submit');
    this.argumentsInput.type = this.folderInput.type = 'text';
    const notebook = path.endsWith('.ipynb');
    const input = remembered.get(this.key) ?? {
      profile: profiles.some(p => p.slug === lastProfile)
        ? lastProfile
        : (profiles[0]?.slug ?? ''),
      arguments: '',
      parameters: '',
      grid: '',
      folder: ''
    };

    this.node.appendChild(
      this.field(
        'File',
        el('code', 'jp-condorhub-submit-file', `${path} (${kindOf(path)})`)
      )
    );
    this.fillProfiles(input.profile);
    this.node.appendChild(this.field('Resources', this.profileBox));

    if (!notebook) {
      this.argumentsInput.value = input.arguments;
      this.argumentsInput.placeholder = 'e.g. --epochs 5 data/train.root';
      this.node.appendChild(
        this.field(
          'Arguments',
          this.argumentsInput,
          'Words as a shell splits them; quote a word with spaces.'
        )
      );
    }
    if (mode === 'job' && notebook) {
      this.parametersInput.value = input.parameters;
      this.parametersInput.rows = 3;
      this.parametersInput.placeholder = 'epochs = 5\nlearning_rate = 0.01';
      this.node.appendChild(
        this.field(
          'Parameters',
          this.parametersInput,
          'One per line, name = value: papermill sets them in the cell tagged “parameters”. The executed notebook is the job’s output.'
        )
      );
    }
    if (mode === 'scan') {
      this.gridInput.value = input.grid;
      this.gridInput.rows = 4;
      this.gridInput.placeholder = 'lr: 0.001, 0.01, 0.1\nlayers: 1:4';
      const how = notebook
        ? 'Each point runs the notebook with these values as papermill parameters.'
        : 'Each point gets the values as arguments (--name value) after the arguments above.';
      this.node.appendChild(
        this.field(
          'Scan parameters',
          this.gridInput,
          `One per line, name: values — a list (0.001, 0.01, 0.1) or a range (1:4, or 1:10:2 with a step). One job per combination, all in one cluster. ${how}`
        )
      );
      this.node.appendChild(this.countLine);
    }

    this.folderInput.value = input.folder;
    this.folderInput.placeholder = 'default: jobs/<name>-<time>';
    this.node.appendChild(
      this.field(
        'Output folder',
        this.folderInput,
        mode === 'scan'
          ? 'Relative to the Lab root; each point writes into <folder>/<name>_<value>/….'
          : 'Relative to the Lab root; the job runs there and writes job.out and job.err into it.'
      )
    );
    this.node.appendChild(
      this.field(
        'Environment',
        el(
          'span',
          'jp-condorhub-submit-env',
          'this server’s own Python environment (the same on every node)'
        )
      )
    );
    this.showError(null);
    this.node.appendChild(this.errorBox);

    const summary = el('summary', undefined, 'Show submit description');
    const saveButton = button(
      'Save as .sub',
      'jp-condorhub-submit-save',
      () => void this.saveDescription(),
      'Write it next to the file, for condor_submit'
    );
    this.details.append(
      summary,
      this.descriptionText,
      saveButton,
      this.savedLine
    );
    this.details.addEventListener('toggle', () => this.changed(0));
    this.node.appendChild(this.details);

    for (const node of [
      this.argumentsInput,
      this.parametersInput,
      this.gridInput,
      this.folderInput
    ]) {
      node.spellcheck = false;
      node.addEventListener('input', () => this.changed());
    }
    this.changed(0);
  }

  protected onAfterAttach(): void {
    // The dialog styles every input of its body as a text field (Styling.styleNode); radio buttons drawn
    // that way show no dot, so they go back to the browser's own.
    for (const radio of this.node.querySelectorAll('input[type=radio]')) {
      radio.classList.remove('jp-mod-styled');
    }
  }

  private get key(): string {
    return `${this.mode}:${this.path}`;
  }

  private field(
    label: string,
    control: HTMLElement,
    hint?: string
  ): HTMLElement {
    const row = el('div', 'jp-condorhub-submit-field');
    row.appendChild(el('div', 'jp-condorhub-submit-label', label));
    const body = el('div', 'jp-condorhub-submit-control');
    body.appendChild(control);
    if (hint) {
      body.appendChild(el('div', 'jp-condorhub-submit-hint', hint));
    }
    row.appendChild(body);
    return row;
  }

  private fillProfiles(selected: string): void {
    for (const profile of this.profiles) {
      const label = el('label', 'jp-condorhub-profile');
      label.dataset.slug = profile.slug;
      const radio = el('input');
      radio.type = 'radio';
      radio.name = 'condorhub-profile';
      radio.value = profile.slug;
      radio.checked = profile.slug === selected;
      radio.addEventListener('change', () => this.changed(0));
      const text = el('span', 'jp-condorhub-profile-text');
      text.append(
        el('span', 'jp-condorhub-profile-name', profile.display_name),
        el('span', 'jp-condorhub-profile-resources', resources(profile))
      );
      if (profile.description) {
        text.appendChild(
          el('span', 'jp-condorhub-profile-description', profile.description)
        );
      }
      label.append(radio, text);
      this.profileBox.appendChild(label);
    }
  }

  private get profile(): string {
    return (
      this.profileBox.querySelector<HTMLInputElement>('input:checked')?.value ??
      ''
    );
  }

  private remember(): void {
    remembered.set(this.key, {
      profile: this.profile,
      arguments: this.argumentsInput.value,
      parameters: this.parametersInput.value,
      grid: this.gridInput.value,
      folder: this.folderInput.value
    });
    lastProfile = this.profile || lastProfile;
  }

  /**
   * The request as the API takes it, or the problems that stop it being sent (sentences for the user).
   */
  request(): { submit: ISubmit | IScanSubmit; problems: string[] } {
    const problems: string[] = [];
    if (!this.profile) {
      problems.push('Pick the resources the job needs.');
    }
    const parameters = parseParameters(this.parametersInput.value);
    const submit: ISubmit = {
      path: this.path,
      profile: this.profile,
      arguments: this.argumentsInput.value,
      parameters: parameters.values,
      environment: 'server'
    };
    const folder = this.folderInput.value.trim().replace(/^\/+|\/+$/g, '');
    if (folder) {
      submit.folder = folder;
    }
    if (this.mode === 'job') {
      return { submit, problems: [...problems, ...parameters.problems] };
    }
    const grid = parseGrid(this.gridInput.value);
    return {
      submit: { ...submit, parameters: {}, grid: grid.values },
      problems: [...problems, ...grid.problems]
    };
  }

  /** An error to show (from the server: its sentence as is); null clears it. */
  showError(message: string | null): void {
    this.errorBox.textContent = message ?? '';
    this.errorBox.style.display = message ? '' : 'none';
  }

  /** The inputs changed: remember them, and ask the server for the count / description shortly. */
  private changed(delay = PREVIEW_DELAY_MS): void {
    this.remember();
    window.clearTimeout(this.previewTimer);
    this.previewTimer = window.setTimeout(() => void this.preview(), delay);
  }

  private async preview(): Promise<void> {
    const seq = ++this.previewSeq;
    const { submit, problems } = this.request();
    const wantDescription = this.details.open;
    if (problems.length) {
      this.showError(problems.join(' '));
      this.countLine.textContent = '';
      return;
    }
    if (this.mode === 'job' && !wantDescription) {
      this.showError(null);
      return;
    }
    if (
      this.mode === 'scan' &&
      Object.keys((submit as IScanSubmit).grid).length === 0
    ) {
      this.showError(null);
      this.countLine.textContent =
        'Give at least one parameter with its values.';
      this.setDescription('');
      return;
    }
    if (wantDescription && !this.description) {
      this.descriptionText.textContent = 'asking the server…';
    }
    try {
      let text: string;
      if (this.mode === 'scan') {
        const answer = await previewScan(submit as IScanSubmit);
        if (seq !== this.previewSeq) {
          return; // a newer preview is on its way
        }
        this.countLine.textContent = `${answer.count} combination${answer.count === 1 ? '' : 's'} → ${answer.count} job${answer.count === 1 ? '' : 's'} in one cluster, writing into ${answer.folder}/`;
        this.countLine.dataset.count = String(answer.count);
        text = answer.description;
      } else {
        text = (await previewJob(submit)).description;
        if (seq !== this.previewSeq) {
          return;
        }
      }
      this.showError(null);
      this.setDescription(text);
    } catch (error) {
      if (seq !== this.previewSeq) {
        return;
      }
      this.countLine.textContent = '';
      delete this.countLine.dataset.count;
      this.showError((error as Error).message);
      this.setDescription('');
    }
  }

  private setDescription(text: string): void {
    this.description = text;
    this.descriptionText.textContent =
      text || (this.details.open ? '(fix the problem above to see it)' : '');
  }

  /** Save the description as <stem>.sub next to the file (<stem>-2.sub, … when that name is taken). */
  private async saveDescription(): Promise<void> {
    if (!this.description) {
      this.savedLine.textContent =
        'There is no submit description to save yet.';
      return;
    }
    const slash = this.path.lastIndexOf('/');
    const dir = slash >= 0 ? this.path.slice(0, slash + 1) : '';
    const stem =
      this.path.slice(slash + 1).replace(/\.(py|sh|ipynb)$/, '') +
      (this.mode === 'scan' ? '-scan' : '');
    try {
      let target = `${dir}${stem}.sub`;
      for (let n = 2; await this.files.exists(target); n++) {
        target = `${dir}${stem}-${n}.sub`;
      }
      await this.files.save(target, this.description);
      this.savedLine.textContent = `Saved as ${target}; condor_submit ${target.slice(dir.length)} in a terminal there submits it as it is.`;
      this.savedLine.dataset.path = target;
    } catch (error) {
      this.savedLine.textContent = `Not saved: ${(error as Error).message}`;
    }
  }

  dispose(): void {
    window.clearTimeout(this.previewTimer);
    super.dispose();
  }
}
