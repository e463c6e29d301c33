"""``ThemeProbe``: an invisible anywidget that tells Python whether JupyterLab shows a dark theme
(``document.body.dataset.jpThemeLight``), and keeps telling it when the user switches."""

from __future__ import annotations

import anywidget
from traitlets import Bool

ESM = """
function render({ model, el }) {
  el.style.display = "none";
  const read = () => {
    const light = document.body.dataset.jpThemeLight;
    const dark = light === "false";
    if (model.get("dark") !== dark) { model.set("dark", dark); model.save_changes(); }
  };
  read();
  const observer = new MutationObserver(read);
  observer.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light"] });
  return () => observer.disconnect();
}
export default { render };
"""


class ThemeProbe(anywidget.AnyWidget):
    """``dark`` is True while JupyterLab's theme is dark."""

    _esm = ESM
    dark = Bool(False).tag(sync=True)
