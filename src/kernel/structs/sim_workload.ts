import { cstring, defineStruct, u32, u64, type ValueOf } from '../../codec/index.js';

/** What the workload keeps in RAM about itself (the sim_workload variable). */
export const sim_workload = defineStruct('sim_workload', {
  seed: u32,
  generation: u32,
  profile: cstring(24),
  run_seconds: u64,
  _reserved: cstring(24),
});
export type SimWorkload = ValueOf<typeof sim_workload>;
