/** A real run's events (mlaas4hep.train, a small torch model, 2 x 2000 ttH-like events, 4 chunks
 * of 1000, 2 epochs per chunk), trimmed of fields the frontend does not read. */

import { IJobEvent } from '../types';

export const RUN: IJobEvent[] = [
  {
    event: 'job_start',
    seq: 1,
    time: 1795559635.423,
    name: 'run',
    mode: 'chunk',
    params: { chunk_size: 1000, epochs: 2, batch_size: 128 }
  },
  {
    event: 'specs_done',
    seq: 2,
    time: 1795559635.457,
    features: 162,
    events: 4000,
    events_read: 4000,
    used: 4000,
    chunks: 4,
    seconds: 0.034,
    cached: false
  },
  { event: 'chunk_start', seq: 3, time: 1795559638.083, chunk: 0, epoch: 1, events: 1000 },
  {
    event: 'epoch',
    seq: 4,
    time: 1795559638.154,
    epoch: 1,
    chunk: 0,
    step: 1,
    loss: 0.6990806262251067,
    accuracy: 0.49235048678720444,
    val_loss: 0.6903620362281799,
    val_accuracy: 0.5494505494505495
  },
  {
    event: 'epoch',
    seq: 5,
    time: 1795559638.322,
    epoch: 2,
    chunk: 0,
    step: 2,
    loss: 0.6899877765082517,
    accuracy: 0.5716272600834492,
    val_loss: 0.6839511394500732,
    val_accuracy: 0.5879120879120879
  },
  {
    event: 'chunk_done',
    seq: 6,
    time: 1795559638.322,
    chunk: 0,
    epoch: 2,
    events_processed: 1000,
    events_total: 4000,
    rate: 3796.6,
    seconds: 0.238
  },
  {
    event: 'progress',
    seq: 7,
    time: 1795559638.322,
    chunk: 0,
    epoch: 2,
    events_processed: 1000,
    events_total: 4000,
    rate: 3796.2,
    eta: 0.8
  },
  { event: 'checkpoint', seq: 8, time: 1795559638.327, path: 'run/checkpoint', chunk: 0, epoch: 2 },
  { event: 'chunk_start', seq: 9, time: 1795559638.327, chunk: 1, epoch: 1, events: 1000 },
  {
    event: 'epoch',
    seq: 10,
    time: 1795559638.553,
    epoch: 1,
    chunk: 1,
    step: 3,
    loss: 0.6827923975259762,
    accuracy: 0.5832187070151307,
    val_loss: 0.6774097681045532,
    val_accuracy: 0.563953488372093
  },
  {
    event: 'epoch',
    seq: 11,
    time: 1795559638.566,
    epoch: 2,
    chunk: 1,
    step: 4,
    loss: 0.6746098144182313,
    accuracy: 0.5777166437414031,
    val_loss: 0.6691697835922241,
    val_accuracy: 0.5872093023255814
  },
  {
    event: 'chunk_done',
    seq: 12,
    time: 1795559638.566,
    chunk: 1,
    epoch: 2,
    events_processed: 2000,
    events_total: 4000,
    rate: 3941.3,
    seconds: 0.236
  },
  {
    event: 'checkpoint',
    seq: 13,
    time: 1795559638.569,
    path: 'run/checkpoint',
    chunk: 1,
    epoch: 2
  },
  { event: 'chunk_start', seq: 14, time: 1795559638.569, chunk: 2, epoch: 1, events: 1000 },
  {
    event: 'epoch',
    seq: 15,
    time: 1795559638.602,
    epoch: 1,
    chunk: 2,
    step: 5,
    loss: 0.6683058276533443,
    accuracy: 0.6390374331550802,
    val_loss: 0.6528427600860596,
    val_accuracy: 0.7077922077922078
  },
  {
    event: 'epoch',
    seq: 16,
    time: 1795559638.607,
    epoch: 2,
    chunk: 2,
    step: 6,
    loss: 0.6606406075431701,
    accuracy: 0.6550802139037433,
    val_loss: 0.6448460817337036,
    val_accuracy: 0.7467532467532467
  },
  {
    event: 'chunk_done',
    seq: 17,
    time: 1795559638.607,
    chunk: 2,
    epoch: 2,
    events_processed: 3000,
    events_total: 4000,
    rate: 5472.2,
    seconds: 0.036
  },
  {
    event: 'progress',
    seq: 18,
    time: 1795559638.607,
    chunk: 2,
    epoch: 2,
    events_processed: 3000,
    events_total: 4000,
    rate: 5471.9,
    eta: 0.2
  },
  {
    event: 'checkpoint',
    seq: 19,
    time: 1795559638.609,
    path: 'run/checkpoint',
    chunk: 2,
    epoch: 2
  },
  { event: 'chunk_start', seq: 20, time: 1795559638.609, chunk: 3, epoch: 1, events: 1000 },
  {
    event: 'epoch',
    seq: 21,
    time: 1795559638.615,
    epoch: 1,
    chunk: 3,
    step: 7,
    loss: 0.649076393854601,
    accuracy: 0.6990014265335235,
    val_loss: 0.6451103091239929,
    val_accuracy: 0.6717171717171717
  },
  {
    event: 'epoch',
    seq: 22,
    time: 1795559638.618,
    epoch: 2,
    chunk: 3,
    step: 8,
    loss: 0.6402290764446775,
    accuracy: 0.7061340941512125,
    val_loss: 0.6374976634979248,
    val_accuracy: 0.6717171717171717
  },
  {
    event: 'chunk_done',
    seq: 23,
    time: 1795559638.618,
    chunk: 3,
    epoch: 2,
    events_processed: 4000,
    events_total: 4000,
    rate: 7153.0,
    seconds: 0.008
  },
  { event: 'checkpoint', seq: 24, time: 1795559638.62, path: 'run/checkpoint', chunk: 3, epoch: 2 },
  { event: 'artifact', seq: 25, time: 1795559638.684, path: 'run/artifact' },
  {
    event: 'finished',
    seq: 26,
    time: 1795559638.684,
    metrics: {
      loss: 0.6429810154890369,
      accuracy: 0.6591478696741855,
      auc: 0.7993108305246743,
      events: 399
    },
    seconds: 3.202,
    artifact: 'run/artifact',
    framework: 'torch'
  }
];
