/** The MLaaS4HEP icon (an event display: tracks from a collision, coloured with the theme). */

import { LabIcon } from '@jupyterlab/ui-components';

import svgstr from '../style/icons/mlaas4hep.svg';

export const mlaas4hepIcon = new LabIcon({ name: 'mlaas4hep-lab:icon', svgstr });
