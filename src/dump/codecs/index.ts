export * from './constants.js';
export * from './rle.js';
export * from './gzip.js';
export * from './lz4.js';
export * from './page_codec.js';
