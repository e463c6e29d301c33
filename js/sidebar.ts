/**
 * The "MLaaS4HEP" panel of the left area: this server's jobs (and, later, remote endpoints'),
 * each a row with name, short id, status badge, progress bar, events/s and age, updated in place.
 */

import { CommandRegistry } from '@lumino/commands';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';
import {
  addIcon,
  CommandToolbarButton,
  refreshIcon,
  SidePanel,
  stopIcon,
  Toolbar,
  ToolbarButton
} from '@jupyterlab/ui-components';

import { IJobSource } from './api';
import { canCancel, jobAge, shortId, statusClass, summarizeProgress } from './format';
import { ISourceJobs, JobsModel } from './jobsmodel';
import { mlaas4hepIcon } from './icons';
import { IJobInfo } from './types';
import { CommandIDs } from './commands';

export class JobsSidebar extends SidePanel {
  constructor(options: JobsSidebar.IOptions) {
    super();
    this.id = 'mlaas4hep-sidebar';
    this.addClass('mlaas4hep-sidebar');
    this.title.icon = mlaas4hepIcon;
    this.title.caption = 'MLaaS4HEP jobs';
    this._model = options.model;
    this._commands = options.commands;

    const heading = new Widget();
    heading.addClass('mlaas4hep-sidebar-heading');
    heading.node.textContent = 'MLaaS4HEP jobs';
    this.header.addWidget(heading);

    this.toolbar.addItem(
      'new-workbench',
      new CommandToolbarButton({
        commands: this._commands,
        id: CommandIDs.newWorkbench,
        icon: addIcon,
        label: 'Workbench',
        caption: 'A new notebook with the MLaaS4HEP Workbench, in the current folder'
      })
    );
    this._compare = new ToolbarButton({
      label: 'Compare',
      className: 'mlaas4hep-compare-button',
      tooltip: 'Compare the selected jobs (tick two or more)',
      enabled: false,
      onClick: () => this.compare()
    });
    this.toolbar.addItem('compare', this._compare);
    this.toolbar.addItem('spacer', Toolbar.createSpacerItem());
    this.toolbar.addItem(
      'refresh',
      new ToolbarButton({
        icon: refreshIcon,
        className: 'mlaas4hep-refresh',
        tooltip: 'Refresh the job list',
        onClick: () => void this._model.refresh()
      })
    );

    this._model.changed.connect(this.render, this);
    this.render();
  }

  /** Draw the model's jobs: rows are keyed by source and job id, updated in place, never rebuilt. */
  private render(): void {
    const now = Date.now() / 1000;
    const seen = new Set<string>();
    for (const entry of this._model.sources) {
      const section = this.section(entry);
      const node = section.node;
      const list = node.querySelector('.mlaas4hep-job-list') as HTMLUListElement;
      const error = node.querySelector('.mlaas4hep-source-error') as HTMLElement;
      error.textContent = entry.error ? `Cannot list the jobs: ${entry.error}` : '';
      error.hidden = !entry.error;
      let previous: Element | null = null;
      for (const job of entry.jobs) {
        const key = `${entry.source.id}/${job.id}`;
        seen.add(key);
        let row = this._rows.get(key);
        if (!row) {
          row = this.createRow(entry.source, job);
          this._rows.set(key, row);
        }
        updateRow(row, job, now);
        const next: Element | null = previous
          ? previous.nextElementSibling
          : list.firstElementChild;
        if (next !== row) {
          list.insertBefore(row, next);
        }
        previous = row;
      }
      const empty = node.querySelector('.mlaas4hep-empty') as HTMLElement;
      empty.hidden = !(entry.loaded && !entry.error && entry.jobs.length === 0);
      node.dataset.loaded = entry.loaded ? 'true' : 'false';
      section.title.label = entry.loaded
        ? `${entry.source.label} (${entry.jobs.length})`
        : entry.source.label;
    }
    for (const [key, row] of this._rows) {
      if (!seen.has(key)) {
        row.remove();
        this._rows.delete(key);
        this._selected.delete(key);
      }
    }
    this.updateCompare();
  }

  /** The ticked jobs, as "source/id" keys, in the order they were ticked. */
  get selected(): string[] {
    return Array.from(this._selected);
  }

  private updateCompare(): void {
    const n = this._selected.size;
    const sources = new Set(this.selected.map(key => key.split('/')[0]));
    this._compare.enabled = n >= 2 && sources.size === 1;
    this._compare.node.dataset.count = String(n);
    this._compare.node.title =
      sources.size > 1
        ? 'Tick jobs of one source only'
        : n >= 2
          ? `Compare the ${n} selected jobs`
          : 'Compare jobs: tick two or more';
  }

  private compare(): void {
    const keys = this.selected;
    if (keys.length < 2) {
      return;
    }
    const source = keys[0].split('/')[0];
    void this._commands.execute(CommandIDs.compareJobs, {
      ids: keys.map(key => key.slice(source.length + 1)),
      source
    });
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this._model.refresh();
  }

  /** The accordion section of a source ("This server"; remote endpoints later). */
  private section(entry: ISourceJobs): Widget {
    let section = this._sections.get(entry.source.id);
    if (!section) {
      section = new Widget();
      section.addClass('mlaas4hep-source');
      section.node.dataset.source = entry.source.id;
      section.title.label = entry.source.label;
      const error = document.createElement('div');
      error.className = 'mlaas4hep-source-error';
      error.hidden = true;
      const list = document.createElement('ul');
      list.className = 'mlaas4hep-job-list';
      section.node.append(error, list, emptyState(this._commands, entry.source.id === 'local'));
      this.addWidget(section);
      this._sections.set(entry.source.id, section);
    }
    return section;
  }

  private createRow(source: IJobSource, job: IJobInfo): HTMLLIElement {
    const row = document.createElement('li');
    row.className = 'mlaas4hep-job-row';
    row.dataset.jobId = job.id;
    row.dataset.source = source.id;
    row.tabIndex = 0;
    row.innerHTML =
      '<div class="mlaas4hep-job-line">' +
      '<span class="mlaas4hep-job-name"></span>' +
      '<span class="mlaas4hep-job-status"></span>' +
      '</div>' +
      '<div class="mlaas4hep-job-line mlaas4hep-job-meta">' +
      '<code class="mlaas4hep-job-id"></code>' +
      '<span class="mlaas4hep-job-rate"></span>' +
      '<span class="mlaas4hep-job-age"></span>' +
      '</div>' +
      '<div class="mlaas4hep-job-line mlaas4hep-job-progress">' +
      '<div class="mlaas4hep-progress-bar"><div class="mlaas4hep-progress-fill"></div></div>' +
      '<span class="mlaas4hep-job-percent"></span>' +
      '</div>';
    const key = `${source.id}/${job.id}`;
    const select = document.createElement('input');
    select.type = 'checkbox';
    select.className = 'mlaas4hep-row-select';
    select.title = 'Select for comparison';
    select.setAttribute('aria-label', `Select ${job.name || job.id} for comparison`);
    select.addEventListener('click', event => event.stopPropagation());
    select.addEventListener('keydown', event => event.stopPropagation());
    select.addEventListener('change', () => {
      if (select.checked) {
        this._selected.add(key);
      } else {
        this._selected.delete(key);
      }
      row.classList.toggle('mlaas4hep-mod-selected', select.checked);
      this.updateCompare();
    });
    row.firstElementChild!.insertBefore(select, row.firstElementChild!.firstChild);
    const cancel = document.createElement('button');
    cancel.className = 'mlaas4hep-row-cancel jp-Button jp-mod-minimal';
    cancel.title = 'Cancel this job';
    cancel.setAttribute('aria-label', 'Cancel this job');
    stopIcon.element({ container: cancel, elementSize: 'normal' });
    cancel.addEventListener('click', event => {
      event.stopPropagation();
      cancel.disabled = true;
      void this._commands
        .execute(CommandIDs.cancelJob, { id: job.id, source: source.id })
        .finally(() => (cancel.disabled = false));
    });
    row.firstElementChild!.appendChild(cancel);
    const open = () =>
      void this._commands.execute(CommandIDs.openJob, { id: job.id, source: source.id });
    row.addEventListener('click', open);
    row.addEventListener('keydown', event => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        open();
      }
    });
    return row;
  }

  private _model: JobsModel;
  private _commands: CommandRegistry;
  private _compare: ToolbarButton;
  private _selected = new Set<string>();
  private _rows = new Map<string, HTMLLIElement>();
  private _sections = new Map<string, Widget>();
}

export namespace JobsSidebar {
  export interface IOptions {
    model: JobsModel;
    commands: CommandRegistry;
  }
}

/** Write a job's current state into its row (only what changed touches the DOM). */
function updateRow(row: HTMLElement, job: IJobInfo, now: number): void {
  const progress = summarizeProgress(job.progress, job.status);
  row.dataset.status = job.status;
  setText(row, '.mlaas4hep-job-name', job.name || 'job');
  const status = row.querySelector('.mlaas4hep-job-status') as HTMLElement;
  const cls = `mlaas4hep-job-status ${statusClass(job.status)}`;
  if (status.className !== cls) {
    status.className = cls;
  }
  setText(row, '.mlaas4hep-job-status', job.status);
  setText(row, '.mlaas4hep-job-id', shortId(job.id));
  setText(row, '.mlaas4hep-job-rate', progress.rate);
  setText(row, '.mlaas4hep-job-age', jobAge(job, now));
  setText(row, '.mlaas4hep-job-percent', progress.label);
  const fill = row.querySelector('.mlaas4hep-progress-fill') as HTMLElement;
  const width = `${progress.percent.toFixed(1)}%`;
  if (fill.style.width !== width) {
    fill.style.width = width;
  }
  fill.className = `mlaas4hep-progress-fill ${statusClass(job.status)}`;
  const cancel = row.querySelector('.mlaas4hep-row-cancel') as HTMLButtonElement;
  cancel.hidden = !canCancel(job);
  const tip = [
    job.name,
    `id ${job.id}`,
    `status ${job.status}`,
    job.error ? `error: ${job.error}` : ''
  ]
    .filter(Boolean)
    .join('\n');
  if (row.title !== tip) {
    row.title = tip;
  }
}

function setText(root: Element, selector: string, text: string): void {
  const node = root.querySelector(selector);
  if (node && node.textContent !== text) {
    node.textContent = text;
  }
}

function emptyState(commands: CommandRegistry, local: boolean): HTMLElement {
  const box = document.createElement('div');
  box.className = 'mlaas4hep-empty';
  box.hidden = true;
  if (!local) {
    box.textContent = 'No jobs on this endpoint.';
    return box;
  }
  // code lines wrap only between their pieces (a break after "-" would read as "- -labels")
  box.innerHTML =
    '<p><b>No training jobs on this server yet.</b></p>' +
    '<p>Start one from a notebook: the <b>MLaaS4HEP workbench</b> (its Train tab)</p>' +
    '<code class="mlaas4hep-empty-code">' +
    '<div><span>from mlaas4hep_lab</span> <span>import Workbench</span></div>' +
    '<div>Workbench()</div></code>' +
    '<p>or the <code>%mlaas4hep</code> magic</p>' +
    '<code class="mlaas4hep-empty-code">' +
    '<div>%load_ext mlaas4hep_lab</div>' +
    '<div><span>%mlaas4hep train</span> <span>--files sig.root,bkg.root</span> ' +
    '<span>--labels 1,0</span> <span>--model model.py</span></div></code>' +
    '<p>Jobs started on this server show up here, with their progress.</p>';
  const actions = document.createElement('div');
  actions.className = 'mlaas4hep-empty-actions';
  for (const [command, label] of [
    [CommandIDs.newWorkbench, 'New workbench'],
    [CommandIDs.openDemo, 'Open the demo']
  ]) {
    const button = document.createElement('button');
    button.className = 'jp-Button jp-mod-styled jp-mod-accept mlaas4hep-empty-button';
    button.textContent = label;
    button.addEventListener('click', () => void commands.execute(command));
    actions.appendChild(button);
  }
  box.appendChild(actions);
  return box;
}
