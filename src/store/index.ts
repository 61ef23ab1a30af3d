/**
 * The SQLite index of a DUMPDIR: schema, migrations, queries. It receives
 * plain records from its caller and never parses a dump.
 */
export { DumpIndex, INDEX_FILE, INDEX_FILE_MODE, MAX_DUMP_N } from './dump_index.js';
export { APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, type Migration } from './schema.js';
export { PANIC_PREFIX, normalisePanicString, panicSignature, parseCallSite } from './signature.js';
export { CHECKSUM_STATUSES, DUMP_DESIGNS, DUMP_FILE_FORMATS, DUMP_STATES, RANGE_REASONS } from './types.js';
export type {
  ChecksumStatus, DumpDesign, DumpFileFormat, DumpRecord, DumpState, LogHit, LogLine, MissingRange, PageRow, RangeReason, SignatureGroup,
} from './types.js';
export { PstoreIndex, type PstoreListed, type PstoreLogHit, type PstoreRecordRow } from './pstore_index.js';
export { type DeviceDumpRow } from './device_index.js';
