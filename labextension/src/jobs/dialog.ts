/**
 * The submit dialog. Unlike a plain Lab dialog it stays open when the server refuses the request: the
 * server's sentence (what is wrong and how to fix it) is shown above the buttons and what the user typed
 * stays in place to be corrected.
 */
import { Dialog } from '@jupyterlab/apputils';

import {
  IJob,
  IProfile,
  IScanSubmit,
  IScanSubmitted,
  submitJob,
  submitScan
} from './api';
import { ITextFiles, Mode, SubmitForm } from './form';

const SUBMIT = 1; // index of the Submit button

export type Submitted =
  { mode: 'job'; job: IJob } | { mode: 'scan'; scan: IScanSubmitted };

class SubmitDialog extends Dialog<null> {
  private busy = false;

  constructor(
    private form: SubmitForm,
    private done: (result: Submitted) => void
  ) {
    super({
      title:
        form.mode === 'scan'
          ? 'Submit as parameter scan'
          : 'Submit as HTCondor job',
      body: form,
      buttons: [
        Dialog.cancelButton(),
        Dialog.okButton({
          label: form.mode === 'scan' ? 'Submit scan' : 'Submit'
        })
      ],
      defaultButton: SUBMIT,
      focusNodeSelector: 'input:checked',
      hasClose: true
    });
    this.addClass('jp-condorhub-submit-dialog');
  }

  resolve(index?: number): void {
    if ((index ?? SUBMIT) === SUBMIT) {
      void this.submit();
    } else {
      super.resolve(index);
    }
  }

  private submitButton(): HTMLButtonElement | null {
    return this.node.querySelector('.jp-Dialog-footer .jp-mod-accept');
  }

  private async submit(): Promise<void> {
    if (this.busy) {
      return;
    }
    const { submit, problems } = this.form.request();
    if (problems.length) {
      this.form.showError(problems.join(' '));
      return;
    }
    this.busy = true;
    const button = this.submitButton();
    if (button) {
      button.disabled = true;
    }
    this.form.showError(null);
    try {
      const result: Submitted =
        this.form.mode === 'scan'
          ? { mode: 'scan', scan: await submitScan(submit as IScanSubmit) }
          : { mode: 'job', job: (await submitJob(submit)).job };
      super.resolve(SUBMIT);
      this.done(result);
    } catch (error) {
      this.form.showError((error as Error).message);
    } finally {
      this.busy = false;
      if (button) {
        button.disabled = false;
      }
    }
  }
}

/** Open the dialog for a file; `done` runs once the server accepted the job or scan. */
export function openSubmitDialog(
  path: string,
  mode: Mode,
  profiles: IProfile[],
  files: ITextFiles,
  done: (result: Submitted) => void
): void {
  const form = new SubmitForm(path, mode, profiles, files);
  void new SubmitDialog(form, done).launch();
}
