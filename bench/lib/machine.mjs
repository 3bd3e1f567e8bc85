// The machine the figures were measured on, printed beside them (figures from different machines, or
// from one machine at different load, are not comparable; ratios measured side by side are).
import os from 'node:os';
import { NOFILE, nofileOf } from './proc.mjs';

export function machine() {
  const cpus = os.cpus();
  return {
    cores: cpus.length,
    model: cpus[0]?.model?.trim() ?? 'unknown',
    memoryGiB: os.totalmem() / 2 ** 30,
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    load: os.loadavg().map((x) => Number(x.toFixed(2))),
    nofile: { ...nofileOf(), children: NOFILE },
  };
}

export function machineLine(m) {
  return `${m.cores} cores (${m.model}), ${m.memoryGiB.toFixed(0)} GiB, Node ${m.node}, ${m.os}, load average ${m.load.join(' ')}, open files ${m.nofile.soft}/${m.nofile.hard}`;
}
