/** The notebook that "New MLaaS4HEP workbench" creates (nbformat 4.5 JSON). Pure. */

export const WORKBENCH_SOURCE = 'from mlaas4hep_lab import Workbench\nWorkbench()';

export interface IKernelSpecRef {
  name: string;
  display_name: string;
  language?: string;
}

/** One code cell that shows the Workbench; the kernel is the given spec (the server's default). */
export function workbenchNotebook(kernel?: IKernelSpecRef | null): { [key: string]: unknown } {
  const metadata: { [key: string]: unknown } = {
    language_info: { name: 'python' }
  };
  if (kernel) {
    metadata.kernelspec = {
      name: kernel.name,
      display_name: kernel.display_name,
      language: kernel.language ?? 'python'
    };
  }
  return {
    cells: [
      {
        cell_type: 'code',
        id: 'mlaas4hep-workbench',
        execution_count: null,
        metadata: {},
        outputs: [],
        source: WORKBENCH_SOURCE
      }
    ],
    metadata,
    nbformat: 4,
    nbformat_minor: 5
  };
}
