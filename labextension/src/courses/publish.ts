/**
 * "Publish to course…": a folder of the instructor's becomes the next version of a course they teach.
 *
 * File browser context menu on a folder, shown only to users who teach a course the hub keeps (the server
 * asks the hub once at start). The dialog shows what would be published — counted in the user's own
 * server with the hub's rules: files, size, the biggest files, what is left out — then publishes through
 * the server (which forwards to the hub with its own token) and shows the published version, or the hub's
 * reason in words. The dialog stays open on a refusal, like the submit dialog.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Dialog, ICommandPalette } from '@jupyterlab/apputils';
import {
  IDefaultFileBrowser,
  IFileBrowserFactory
} from '@jupyterlab/filebrowser';
import { Widget } from '@lumino/widgets';

import { el } from '../dom';
import {
  IPreview,
  IPublished,
  ITeachingCourse,
  formatSize,
  getTeaching,
  previewPublish,
  publishFolder
} from './api';

const CMD = 'condorhub:publish-course';
const PUBLISH = 1; // index of the Publish button
const FOLDER_SELECTOR = '.jp-DirListing-item[data-isdir="true"]';

/** The dialog's body: folder, course choice, what will be published, and the outcome. */
class PublishBody extends Widget {
  readonly select: HTMLSelectElement;
  private summary: HTMLElement;
  private status: HTMLElement;

  constructor(readonly path: string) {
    super();
    this.addClass('jp-condorhub-publish');
    const node = this.node;
    node.appendChild(
      el('div', 'jp-condorhub-publish-folder', `Folder: ~/${path}`)
    );
    const label = el('label', 'jp-condorhub-publish-course', 'Course ');
    this.select = el('select');
    this.select.disabled = true;
    label.appendChild(this.select);
    node.appendChild(label);
    this.summary = el(
      'div',
      'jp-condorhub-publish-summary',
      'Counting the files…'
    );
    node.appendChild(this.summary);
    this.status = el('div', 'jp-condorhub-publish-status');
    node.appendChild(this.status);
  }

  showPreview(preview: IPreview): void {
    this.node.querySelector('.jp-condorhub-publish-folder')!.textContent =
      `Folder: ~/${preview.folder}`;
    this.select.replaceChildren(
      ...preview.courses.map((course: ITeachingCourse) => {
        const option = el(
          'option',
          undefined,
          `${course.title} (${course.slug})`
        );
        option.value = course.slug;
        return option;
      })
    );
    this.select.disabled = preview.courses.length < 2;
    const box = this.summary;
    box.replaceChildren();
    const count = el(
      'div',
      'jp-condorhub-publish-count',
      `${preview.files} file${preview.files === 1 ? '' : 's'}, ${formatSize(preview.bytes)}`
    );
    if (preview.limits) {
      count.title = `A publish may hold at most ${preview.limits.max_files} files and ${formatSize(preview.limits.max_size)}`;
    }
    box.appendChild(count);
    if (preview.biggest.length > 1) {
      box.appendChild(
        el('div', 'jp-condorhub-publish-heading', 'Biggest files')
      );
      const list = el('ul', 'jp-condorhub-publish-biggest');
      for (const file of preview.biggest) {
        list.appendChild(
          el('li', undefined, `${file.path} — ${formatSize(file.size)}`)
        );
      }
      box.appendChild(list);
    }
    const left = [...preview.skipped, ...preview.excluded];
    if (left.length) {
      const more = preview.skipped_count - preview.skipped.length;
      box.appendChild(
        el(
          'div',
          'jp-condorhub-publish-heading',
          'Not published (links, special files, git metadata, caches)'
        )
      );
      const list = el('ul', 'jp-condorhub-publish-skipped');
      for (const entry of left) {
        list.appendChild(el('li', undefined, entry));
      }
      if (more > 0) {
        list.appendChild(el('li', undefined, `… and ${more} more`));
      }
      box.appendChild(list);
    }
    if (preview.problem) {
      this.showError(`This folder cannot be published: ${preview.problem}.`);
    }
  }

  showProgress(text: string): void {
    this.status.className = 'jp-condorhub-publish-status jp-mod-progress';
    this.status.textContent = text;
  }

  showError(text: string): void {
    this.status.className = 'jp-condorhub-publish-status jp-mod-error';
    this.status.textContent = text;
  }

  showPublished(result: IPublished, title: string): void {
    this.status.className = 'jp-condorhub-publish-status jp-mod-success';
    const version = result.commit.slice(0, 10);
    this.status.textContent = result.changed
      ? `Published to ${title}: version ${version} (${result.files} files). Students get it at their next server start, or from the link on the hub's home page.`
      : `Nothing changed since the last publish: ${title} stays at version ${version} (${result.files} files).`;
    this.status.dataset.commit = result.commit;
  }
}

class PublishDialog extends Dialog<null> {
  private busy = true; // until the preview arrived
  private preview: IPreview | null = null;

  constructor(private body: PublishBody) {
    super({
      title: 'Publish to course',
      body,
      buttons: [
        Dialog.cancelButton({ label: 'Close' }),
        Dialog.okButton({ label: 'Publish' })
      ],
      defaultButton: PUBLISH,
      hasClose: true
    });
    this.addClass('jp-condorhub-publish-dialog');
  }

  private publishButton(): HTMLButtonElement | null {
    return this.node.querySelector('.jp-Dialog-footer .jp-mod-accept');
  }

  async load(): Promise<void> {
    this.setPublishable(false);
    try {
      this.preview = await previewPublish(this.body.path);
      this.body.showPreview(this.preview);
      this.setPublishable(
        !this.preview.problem && this.preview.courses.length > 0
      );
      if (!this.preview.courses.length) {
        this.body.showError(
          'You teach no course that the hub keeps: there is nothing to publish to.'
        );
      }
    } catch (error) {
      this.body.showError((error as Error).message);
    } finally {
      this.busy = false;
    }
  }

  private setPublishable(yes: boolean): void {
    const button = this.publishButton();
    if (button) {
      button.disabled = !yes;
    }
  }

  resolve(index?: number): void {
    if ((index ?? PUBLISH) === PUBLISH) {
      void this.publish();
    } else {
      super.resolve(index);
    }
  }

  private async publish(): Promise<void> {
    const preview = this.preview;
    const button = this.publishButton();
    if (this.busy || !preview || preview.problem || button?.disabled) {
      return;
    }
    const slug = this.body.select.value;
    const title =
      preview.courses.find(course => course.slug === slug)?.title ?? slug;
    this.busy = true;
    this.setPublishable(false);
    const started = Date.now();
    const what = `${preview.files} files, ${formatSize(preview.bytes)}`;
    this.body.showProgress(`Publishing ${what} to ${title}…`);
    const ticker = setInterval(() => {
      const seconds = Math.round((Date.now() - started) / 1000);
      this.body.showProgress(`Publishing ${what} to ${title}… ${seconds} s`);
    }, 1000);
    try {
      const result = await publishFolder(slug, this.body.path);
      clearInterval(ticker);
      this.body.showPublished(result, title);
    } catch (error) {
      clearInterval(ticker);
      this.body.showError(`Not published: ${(error as Error).message}`);
      this.setPublishable(true);
    } finally {
      clearInterval(ticker);
      this.busy = false;
    }
  }
}

export const publishPlugin: JupyterFrontEndPlugin<void> = {
  id: '@condorhub/lab:publish',
  description:
    'Publish to course…: a folder becomes the next version of a course the user teaches',
  autoStart: true,
  requires: [IFileBrowserFactory],
  optional: [IDefaultFileBrowser, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    factory: IFileBrowserFactory,
    browser: IDefaultFileBrowser | null,
    palette: ICommandPalette | null
  ) => {
    let teaches = false;
    app.commands.addCommand(CMD, {
      label: 'Publish to course…',
      caption: 'Publish this folder as the next version of a course you teach',
      isVisible: () => teaches,
      describedBy: {
        args: {
          type: 'object',
          properties: {
            path: {
              type: 'string',
              description:
                'The folder, relative to the Lab root; default: the right-clicked folder, else the one the file browser shows'
            }
          }
        }
      },
      execute: async args => {
        const current = factory.tracker.currentWidget ?? browser;
        let path = typeof args.path === 'string' ? args.path : '';
        if (!path && current) {
          const folder = [...current.selectedItems()].find(
            item => item.type === 'directory'
          );
          path = folder?.path ?? current.model.path;
        }
        const dialog = new PublishDialog(new PublishBody(path));
        const shown = dialog.launch();
        await dialog.load();
        await shown;
      }
    });
    app.contextMenu.addItem({
      command: CMD,
      selector: FOLDER_SELECTOR,
      rank: 22
    });
    void app.restored.then(async () => {
      try {
        teaches = (await getTeaching()).courses.length > 0;
      } catch {
        teaches = false; // a server without the hub, or a hub that does not answer: no menu item
      }
      if (teaches && palette) {
        palette.addItem({ command: CMD, category: 'condorhub' });
      }
    });
  }
};
