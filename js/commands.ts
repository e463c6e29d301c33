/** Command ids of the extension (kept apart so that every module can name them). */

export namespace CommandIDs {
  /** show the MLaaS4HEP jobs panel */
  export const showJobs = 'mlaas4hep:show-jobs';
  export const refreshJobs = 'mlaas4hep:refresh-jobs';
  /** open (or reveal) a job's view; args: { id, source? } */
  export const openJob = 'mlaas4hep:open-job';
  /** args: { id, source? } */
  export const cancelJob = 'mlaas4hep:cancel-job';
  /** compare several jobs of one source; args: { ids: string[], source? } */
  export const compareJobs = 'mlaas4hep:compare-jobs';
  /** the demo notebook, copied into the user's root folder, opened */
  export const openDemo = 'mlaas4hep:open-demo';
  /** a new notebook with a Workbench cell, in the file browser's folder */
  export const newWorkbench = 'mlaas4hep:new-workbench';
}
