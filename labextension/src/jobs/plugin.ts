/**
 * The jobs plugin: the Jobs panel, "Submit as HTCondor job…" / "Submit as parameter scan…" (file browser
 * context menu, editor and notebook toolbar, command palette), job output tabs, and the way from a scan to
 * the scan browser.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  MainAreaWidget,
  ToolbarButton,
  WidgetTracker,
  showDialog,
  showErrorMessage
} from '@jupyterlab/apputils';
import type {
  DocumentRegistry,
  IDocumentWidget
} from '@jupyterlab/docregistry';
import {
  IDefaultFileBrowser,
  IFileBrowserFactory
} from '@jupyterlab/filebrowser';
import { Widget } from '@lumino/widgets';

import { requestAPI } from '../api';
import { IJob, IProfile, JobAction, actOnJob, getScan, listJobs } from './api';
import type { Submitted } from './dialog';
import { IEntryActions } from './entry';
import { ITextFiles, Mode } from './form';
import { jobsIcon } from './icon';
import type { JobOutput } from './output';
// The panel is added to the sidebar at activation, so its module is needed at once.
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { JobsPanel } from './panel';

const CMD = {
  submit: 'condorhub:submit-job',
  scan: 'condorhub:submit-scan',
  openScanBrowser: 'condorhub:open-scan-browser' // the scan browser's own command (src/index.ts)
};
/** The arguments the submit commands take (describedBy: their description for whatever calls them). */
const FILE_ARGS = {
  args: {
    type: 'object',
    properties: {
      path: {
        type: 'string',
        description:
          'The .py, .sh or .ipynb file, relative to the Lab root; default: the selected file in the file browser, else the open document'
      },
      isContextMenu: {
        type: 'boolean',
        description: 'Invoked from the file browser context menu'
      },
      isPalette: {
        type: 'boolean',
        description: 'Invoked from the command palette'
      }
    }
  }
};
const SUBMITTABLE = /\.(py|sh|ipynb)$/;
const FILE_SELECTOR = '.jp-DirListing-item[data-isdir="false"]';
const ACTION_DONE: Record<JobAction, string> = {
  remove: 'cancelled',
  hold: 'held',
  release: 'released',
  resubmit: 'resubmitted'
};

export const jobsPlugin: JupyterFrontEndPlugin<void> = {
  id: '@condorhub/lab:jobs',
  description:
    'HTCondor jobs and parameter scans from the Lab: the Jobs panel and Submit from the editor',
  autoStart: true,
  requires: [IFileBrowserFactory],
  optional: [IDefaultFileBrowser, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    factory: IFileBrowserFactory,
    browser: IDefaultFileBrowser | null,
    palette: ICommandPalette | null
  ) => {
    const outputs = new WidgetTracker<MainAreaWidget<JobOutput>>({
      namespace: 'condorhub-job-output'
    });
    const contents = app.serviceManager.contents;
    const files: ITextFiles = {
      exists: path =>
        contents.get(path, { content: false }).then(
          () => true,
          () => false
        ),
      save: async (path, text) => {
        await contents.save(path, {
          type: 'file',
          format: 'text',
          content: text
        });
      }
    };

    const openFolder = (folder: string | null) => {
      if (folder === null) {
        panel.tell(
          'This job’s folder is outside the Lab’s root folder: the file browser cannot show it.',
          true
        );
        return;
      }
      app.commands
        .execute('filebrowser:go-to-path', { path: `/${folder}` })
        .catch(error =>
          panel.tell(`Cannot open ${folder}: ${(error as Error).message}`, true)
        );
    };

    const openOutput = async (job: IJob) => {
      const open = outputs.find(tab => tab.content.job.id === job.id);
      if (open) {
        app.shell.activateById(open.id);
        return;
      }
      const { outputTab } = await import('./output');
      const tab = outputTab(job, openFolder);
      app.shell.add(tab, 'main');
      void outputs.add(tab);
      app.shell.activateById(tab.id);
    };

    const act = async (job: IJob, action: JobAction) => {
      if (action === 'remove') {
        const answer = await showDialog({
          title: 'Cancel job',
          body: `Remove ${job.name} (${job.id}) from the queue? Its output so far stays in ${job.folder ?? 'its folder'}.`,
          buttons: [
            Dialog.cancelButton({ label: 'Keep it' }),
            Dialog.warnButton({ label: 'Cancel job' })
          ]
        });
        if (!answer.button.accept) {
          return;
        }
      }
      try {
        const result = await actOnJob(job.id, action);
        panel.tell(
          action === 'resubmit'
            ? `Job ${job.id} resubmitted as job ${result.job.id}.`
            : `Job ${job.id} ${ACTION_DONE[action]}.`
        );
      } catch (error) {
        panel.tell(
          `Job ${job.id} not ${ACTION_DONE[action]}: ${(error as Error).message}`,
          true
        );
      }
      await panel.refresh();
    };

    const openScan = async (cluster: number) => {
      try {
        const scan = await getScan(cluster);
        // The scan browser opens a folder with the pattern saved for it last: save the scan's own pattern
        // (under a name that says where it came from), so the browser opens with it filled in, now and later.
        await requestAPI('scan/patterns', {
          method: 'PUT',
          body: JSON.stringify({
            path: scan.folder,
            name: `HTCondor scan ${cluster}`,
            pattern: scan.pattern
          })
        });
        await app.commands.execute(CMD.openScanBrowser, { path: scan.folder });
      } catch (error) {
        panel.tell(
          `Cannot open scan ${cluster}: ${(error as Error).message}`,
          true
        );
      }
    };

    const cancelScan = async (cluster: number, active: IJob[]) => {
      const answer = await showDialog({
        title: 'Cancel scan',
        body: `Remove the ${active.length} points of scan ${cluster} that have not finished? Finished points keep their results.`,
        buttons: [
          Dialog.cancelButton({ label: 'Keep them' }),
          Dialog.warnButton({ label: 'Cancel scan' })
        ]
      });
      if (!answer.button.accept) {
        return;
      }
      const refusals = await Promise.all(
        active.map(p =>
          actOnJob(p.id, 'remove').then(
            () => null,
            (error: Error) => error.message
          )
        )
      );
      const failed = refusals.filter((r): r is string => r !== null);
      panel.tell(
        failed.length
          ? `${failed.length} of ${active.length} points not cancelled: ${failed[0]}`
          : `Scan ${cluster}: ${active.length} points cancelled.`,
        failed.length > 0
      );
      await panel.refresh();
    };

    const actions: IEntryActions = {
      act: (job, action) => void act(job, action),
      openOutput: job => void openOutput(job),
      openFolder,
      openScan: cluster => void openScan(cluster),
      cancelScan: (cluster, points) => void cancelScan(cluster, points)
    };
    const panel = new JobsPanel(actions);
    panel.title.icon = jobsIcon;
    app.shell.add(panel, 'left', { rank: 650 });
    panel.onChange(jobs => {
      for (const job of jobs) {
        outputs.find(tab => tab.content.job.id === job.id)?.content.setJob(job);
      }
    });

    const submitted = (result: Submitted) => {
      panel.tell(
        result.mode === 'job'
          ? `Submitted ${result.job.name} as job ${result.job.id}.`
          : `Submitted scan ${result.scan.cluster}: ${result.scan.count} jobs writing into ${result.scan.folder}/.`
      );
      app.shell.activateById(panel.id);
      void panel.refresh();
    };

    /** The file a command applies to: args.path, the file browser's selection, or the open document. */
    const targetFile = (args: Record<string, unknown>): string | null => {
      if (typeof args.path === 'string') {
        return args.path;
      }
      if (args.isContextMenu) {
        const current = factory.tracker.currentWidget ?? browser;
        for (const item of current?.selectedItems() ?? []) {
          return item.type === 'directory' ? null : item.path;
        }
        return null;
      }
      const widget = app.shell.currentWidget as Partial<IDocumentWidget> | null;
      return widget?.context?.path ?? null;
    };

    const profiles = async (): Promise<IProfile[]> =>
      panel.profiles.length ? panel.profiles : (await listJobs()).profiles;

    const submitCommand =
      (mode: Mode) => async (args: Record<string, unknown>) => {
        const path = targetFile(args);
        if (!path || !SUBMITTABLE.test(path)) {
          await showErrorMessage(
            'Nothing to submit',
            'Open or select a .py, .sh or .ipynb file first.'
          );
          return;
        }
        let offered: IProfile[];
        try {
          offered = await profiles();
        } catch (error) {
          await showErrorMessage('HTCondor jobs', (error as Error).message);
          return;
        }
        if (!offered.length) {
          await showErrorMessage(
            'No HTCondor access',
            'This server has no HTCondor profiles you may submit with: ask the course team which resources your role gets.'
          );
          return;
        }
        const { openSubmitDialog } = await import('./dialog');
        openSubmitDialog(path, mode, offered, files, submitted);
      };
    const applies = (args: Record<string, unknown>) =>
      SUBMITTABLE.test(targetFile(args) ?? '');

    app.commands.addCommand(CMD.submit, {
      label: 'Submit as HTCondor job…',
      describedBy: FILE_ARGS,
      caption: 'Run this script or notebook as a batch job on the pool',
      icon: args => (args.isPalette ? undefined : jobsIcon),
      isVisible: args => !args.isContextMenu || applies(args),
      execute: submitCommand('job')
    });
    app.commands.addCommand(CMD.scan, {
      label: 'Submit as parameter scan…',
      describedBy: FILE_ARGS,
      caption:
        'Run it once per combination of parameter values, as one job cluster',
      isVisible: args => !args.isContextMenu || applies(args),
      execute: submitCommand('scan')
    });

    app.contextMenu.addItem({
      command: CMD.submit,
      selector: FILE_SELECTOR,
      rank: 22,
      args: { isContextMenu: true }
    });
    app.contextMenu.addItem({
      command: CMD.scan,
      selector: FILE_SELECTOR,
      rank: 23,
      args: { isContextMenu: true }
    });
    if (palette) {
      palette.addItem({
        command: CMD.submit,
        category: 'condorhub',
        args: { isPalette: true }
      });
      palette.addItem({
        command: CMD.scan,
        category: 'condorhub',
        args: { isPalette: true }
      });
    }

    // A "Submit" button in the toolbar of notebooks and of editors showing a .py or .sh file.
    const toolbarButton = (
      widget: Widget,
      context: DocumentRegistry.Context,
      scripts: boolean
    ) => {
      if (scripts && !/\.(py|sh)$/.test(context.path)) {
        return;
      }
      const button = new ToolbarButton({
        icon: jobsIcon,
        label: 'Submit',
        tooltip: 'Submit this file as an HTCondor job',
        onClick: () =>
          void app.commands.execute(CMD.submit, { path: context.path })
      });
      const toolbar = (widget as IDocumentWidget).toolbar;
      if (!toolbar.insertAfter('spacer', 'condorhub-submit', button)) {
        toolbar.addItem('condorhub-submit', button);
      }
      return button;
    };
    app.docRegistry.addWidgetExtension('Notebook', {
      createNew: (w, c) => toolbarButton(w, c, false)
    });
    app.docRegistry.addWidgetExtension('Editor', {
      createNew: (w, c) => toolbarButton(w, c, true)
    });
  }
};
