import { WORKBENCH_SOURCE, workbenchNotebook } from '../notebook';

describe('workbenchNotebook', () => {
  it('is one code cell that shows the Workbench, in nbformat 4.5', () => {
    const nb = workbenchNotebook({ name: 'python3', display_name: 'Python 3 (ipykernel)' }) as any;
    expect([nb.nbformat, nb.nbformat_minor]).toEqual([4, 5]);
    expect(nb.cells).toHaveLength(1);
    expect(nb.cells[0]).toMatchObject({
      cell_type: 'code',
      source: WORKBENCH_SOURCE,
      outputs: [],
      execution_count: null
    });
    expect(WORKBENCH_SOURCE).toBe('from mlaas4hep_lab import Workbench\nWorkbench()');
    expect(nb.cells[0].id).toMatch(/^[a-zA-Z0-9-_]{1,64}$/);
    expect(nb.metadata.kernelspec).toEqual({
      name: 'python3',
      display_name: 'Python 3 (ipykernel)',
      language: 'python'
    });
  });

  it('leaves the kernel to JupyterLab when the server has no default kernelspec', () => {
    expect((workbenchNotebook(null) as any).metadata.kernelspec).toBeUndefined();
  });
});
