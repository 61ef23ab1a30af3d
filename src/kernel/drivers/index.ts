import type { PciDriver } from './core.js';
import { cxgb4Driver } from './cxgb4.js';
import { mpt3sasDriver } from './mpt3sas.js';
import { nvmeDriver } from './nvme.js';

export * from './core.js';
export * from './cudbg.js';
export * from './simdump.js';
export * from './cxgb4.js';
export * from './mpt3sas.js';
export * from './nvme.js';

/** The PCI drivers built into the simulated kernel, in link order. */
export const PCI_DRIVERS: readonly PciDriver[] = [cxgb4Driver, mpt3sasDriver, nvmeDriver];
