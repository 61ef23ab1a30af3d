'use strict';
// The addon node-gyp built from pagezip.c at install time; there is no
// prebuilt fallback, so a failed build shows up as a load error here.
const path = require('node:path');

module.exports = require(path.join(__dirname, 'build', 'Release', 'pagezip.node'));
