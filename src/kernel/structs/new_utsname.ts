import { cstring, ctyped, defineStruct, i32, bytes, type ValueOf } from '../../codec/index.js';
import { __NEW_UTS_LEN } from '../constants.js';

const UTS_FIELD = __NEW_UTS_LEN + 1;

/** struct new_utsname (include/uapi/linux/utsname.h): six char[65]. */
export const new_utsname = defineStruct('new_utsname', {
  sysname: cstring(UTS_FIELD),
  nodename: cstring(UTS_FIELD),
  release: cstring(UTS_FIELD),
  version: cstring(UTS_FIELD),
  machine: cstring(UTS_FIELD),
  domainname: cstring(UTS_FIELD),
});
export type NewUtsname = ValueOf<typeof new_utsname>;

/**
 * struct uts_namespace (include/linux/utsname.h, before v5.11): a struct kref
 * then the names, so OFFSET(uts_namespace.name) is 4 as makedumpfile assumes.
 */
export const uts_namespace = defineStruct('uts_namespace', {
  kref: ctyped(i32, 'struct kref'),
  name: new_utsname,
  _pad: bytes(2),
});
export type UtsNamespace = ValueOf<typeof uts_namespace>;
