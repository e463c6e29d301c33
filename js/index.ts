/**
 * The MLaaS4HEP JupyterLab extension: a jobs sidebar, job views, and launcher / palette
 * commands for the demo notebook and a new workbench notebook.
 */

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import {
  ICommandPalette,
  MainAreaWidget,
  showErrorMessage,
  WidgetTracker
} from '@jupyterlab/apputils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ILauncher } from '@jupyterlab/launcher';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { refreshIcon } from '@jupyterlab/ui-components';

import {
  IJobSource,
  listRemotes,
  RemoteJobSource,
  requestDemoNotebook,
  ServerJobSource
} from './api';
import { CommandIDs } from './commands';
import { mlaas4hepIcon } from './icons';
import { JobsModel, message } from './jobsmodel';
import { createComparePanel } from './compare';
import { confirmCancel, createJobPanel, JobView } from './jobview';
import { workbenchNotebook } from './notebook';
import { JobsSidebar } from './sidebar';
import { findSource } from './sources';

const PLUGIN_ID = 'mlaas4hep-lab:plugin';
const CATEGORY = 'MLaaS4HEP';

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'MLaaS4HEP training jobs: sidebar, live job views, demo and workbench launchers.',
  autoStart: true,
  optional: [ILayoutRestorer, ISettingRegistry, ILauncher, ICommandPalette, IDefaultFileBrowser],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    settingRegistry: ISettingRegistry | null,
    launcher: ILauncher | null,
    palette: ICommandPalette | null,
    fileBrowser: IDefaultFileBrowser | null
  ) => {
    const { commands, shell, serviceManager } = app;
    const local = new ServerJobSource(serviceManager.serverSettings);
    const sources: IJobSource[] = [local];
    let sidebar: JobsSidebar | null = null;
    const model = new JobsModel({
      sources,
      standby: () => !!sidebar && !sidebar.isVisible
    });
    sidebar = new JobsSidebar({ model, commands });
    shell.add(sidebar, 'left', { rank: 950, type: 'MLaaS4HEP jobs' });
    if (restorer) {
      restorer.add(sidebar, 'mlaas4hep-sidebar');
    }
    model.start();
    // each remote MLaaS4HEP service this server forwards to: its own section of the sidebar
    const remotesListed = listRemotes(serviceManager.serverSettings)
      .then(remotes => {
        for (const remote of remotes) {
          model.addSource(
            new RemoteJobSource(remote.name, remote.url, serviceManager.serverSettings)
          );
        }
      })
      .catch(reason => console.error('mlaas4hep-lab: cannot list the remote services', reason));

    if (settingRegistry) {
      void settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          const apply = () => {
            const seconds = Number(settings.get('refreshInterval').composite);
            model.interval = Math.max(1, isFinite(seconds) ? seconds : 3) * 1000;
          };
          apply();
          settings.changed.connect(apply);
        })
        .catch(reason => console.error('mlaas4hep-lab: cannot load its settings', reason));
    }

    const tracker = new WidgetTracker<MainAreaWidget<JobView>>({ namespace: 'mlaas4hep-job' });
    // a job view restored after a reload names its source before the remotes are listed
    const sourceOf = (args: { [key: string]: unknown }): Promise<IJobSource> =>
      findSource(id => model.source(id), String(args.source ?? local.id), local.id, remotesListed);

    commands.addCommand(CommandIDs.openJob, {
      label: args =>
        args.id ? `Open MLaaS4HEP job ${String(args.id).slice(0, 8)}` : 'Open MLaaS4HEP job',
      execute: async args => {
        const id = String(args.id ?? '');
        if (!id) {
          return;
        }
        let source: IJobSource;
        try {
          source = await sourceOf(args);
        } catch (err) {
          await showErrorMessage(`Cannot open MLaaS4HEP job ${id.slice(0, 8)}`, message(err));
          return;
        }
        const open = tracker.find(w => w.content.jobId === id && w.content.source.id === source.id);
        if (open) {
          shell.activateById(open.id);
          return open;
        }
        const panel = createJobPanel({ jobId: id, source, onChanged: () => void model.refresh() });
        void tracker.add(panel);
        shell.add(panel, 'main');
        shell.activateById(panel.id);
        return panel;
      }
    });

    commands.addCommand(CommandIDs.compareJobs, {
      label: args =>
        Array.isArray(args.ids)
          ? `Compare ${args.ids.length} MLaaS4HEP jobs`
          : 'Compare MLaaS4HEP jobs',
      execute: async args => {
        const ids = Array.isArray(args.ids) ? args.ids.map(String) : [];
        if (ids.length < 2) {
          return;
        }
        let source: IJobSource;
        try {
          source = await sourceOf(args);
        } catch (err) {
          await showErrorMessage('Cannot compare the MLaaS4HEP jobs', message(err));
          return;
        }
        const panel = createComparePanel({ ids, source });
        shell.add(panel, 'main');
        shell.activateById(panel.id);
        return panel;
      }
    });

    commands.addCommand(CommandIDs.cancelJob, {
      label: 'Cancel MLaaS4HEP job',
      execute: async args => {
        const id = String(args.id ?? '');
        const job = model.jobs.find(j => j.id === id);
        if (!(await confirmCancel(job?.name || 'this job', id))) {
          return;
        }
        try {
          await (await sourceOf(args)).cancel(id);
        } catch (err) {
          await showErrorMessage('Cannot cancel the job', message(err));
        }
        await model.refresh();
      }
    });

    commands.addCommand(CommandIDs.showJobs, {
      label: 'Show MLaaS4HEP jobs',
      caption: 'The MLaaS4HEP training jobs of this server',
      icon: args => (args.isPalette ? undefined : mlaas4hepIcon),
      execute: () => {
        if (sidebar) {
          shell.activateById(sidebar.id);
        }
      }
    });

    commands.addCommand(CommandIDs.refreshJobs, {
      label: 'Refresh MLaaS4HEP jobs',
      icon: args => (args.isPalette ? undefined : refreshIcon),
      execute: () => model.refresh()
    });

    commands.addCommand(CommandIDs.openDemo, {
      label: args => (args.isLauncher ? 'MLaaS4HEP demo' : 'Open the MLaaS4HEP demo notebook'),
      caption:
        'Copy the MLaaS4HEP demo notebook to mlaas4hep-demo/ in your home folder and open it',
      icon: args => (args.isPalette ? undefined : mlaas4hepIcon),
      execute: async () => {
        try {
          const path = await requestDemoNotebook(serviceManager.serverSettings);
          return await commands.execute('docmanager:open', { path, factory: 'Notebook' });
        } catch (err) {
          await showErrorMessage('Cannot open the MLaaS4HEP demo', message(err));
        }
      }
    });

    commands.addCommand(CommandIDs.newWorkbench, {
      label: 'New MLaaS4HEP workbench',
      caption: 'A new notebook, in the current folder, that shows the MLaaS4HEP Workbench',
      icon: args => (args.isPalette ? undefined : mlaas4hepIcon),
      execute: async args => {
        try {
          const contents = serviceManager.contents;
          // the launcher says where it was opened; elsewhere, the file browser's folder
          const cwd = typeof args.cwd === 'string' ? args.cwd : (fileBrowser?.model.path ?? '');
          await serviceManager.kernelspecs.ready;
          const specs = serviceManager.kernelspecs.specs;
          const spec = specs ? specs.kernelspecs[specs.default] : undefined;
          const created = await contents.newUntitled({ path: cwd, type: 'notebook' });
          await contents.save(created.path, {
            type: 'notebook',
            format: 'json',
            content: workbenchNotebook(spec ?? null)
          });
          return await commands.execute('docmanager:open', {
            path: created.path,
            factory: 'Notebook'
          });
        } catch (err) {
          await showErrorMessage('Cannot create the MLaaS4HEP workbench notebook', message(err));
        }
      }
    });

    if (launcher) {
      launcher.add({
        command: CommandIDs.openDemo,
        category: CATEGORY,
        rank: 1,
        args: { isLauncher: true }
      });
      launcher.add({
        command: CommandIDs.newWorkbench,
        category: CATEGORY,
        rank: 2,
        args: { isLauncher: true }
      });
    }
    if (palette) {
      for (const command of [
        CommandIDs.openDemo,
        CommandIDs.newWorkbench,
        CommandIDs.showJobs,
        CommandIDs.refreshJobs
      ]) {
        palette.addItem({ command, category: CATEGORY });
      }
    }
    if (restorer) {
      void restorer.restore(tracker, {
        command: CommandIDs.openJob,
        args: widget => ({ id: widget.content.jobId, source: widget.content.source.id }),
        name: widget => `${widget.content.source.id}:${widget.content.jobId}`
      });
    }
  }
};

export default plugin;
