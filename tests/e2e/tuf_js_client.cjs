// A standard TUF client that is not python-tuf: tuf-js (npm), driven by
// tests/e2e/test_standard_clients.py to check that a hub's repository follows the
// specification and not just what python-tuf happens to accept.
//
//   node tuf_js_client.cjs REQUEST.json
//
// REQUEST: {"metadataBaseUrl", "targetBaseUrl", "trustedRoot" (a root.json file the
// client starts from), "workDir" (kept between runs: the client's trusted metadata),
// "targets": [target paths]}. Refreshes from the hub, downloads each target (tuf-js
// checks length and hashes), and prints {"tufJsVersion", "node", "targets": {PATH:
// {"file", "length", "sha256"}}} as JSON. Any failure: the message on stderr, exit 1.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { Updater } = require('tuf-js');

async function main() {
  const request = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const metadataDir = path.join(request.workDir, 'metadata');
  const targetDir = path.join(request.workDir, 'targets');
  fs.mkdirSync(metadataDir, { recursive: true });
  fs.mkdirSync(targetDir, { recursive: true });
  if (!fs.existsSync(path.join(metadataDir, 'root.json'))) {
    fs.copyFileSync(request.trustedRoot, path.join(metadataDir, 'root.json'));
  }
  const updater = new Updater({
    metadataDir,
    metadataBaseUrl: request.metadataBaseUrl,
    targetDir,
    targetBaseUrl: request.targetBaseUrl,
  });
  await updater.refresh();
  const targets = {};
  for (const targetPath of request.targets) {
    const info = await updater.getTargetInfo(targetPath);
    if (!info) {
      throw new Error(`target ${targetPath}: not in the hub's signed metadata`);
    }
    const file = path.join(targetDir, targetPath.replaceAll('/', '__'));
    await updater.downloadTarget(info, file);
    const data = fs.readFileSync(file);
    targets[targetPath] = {
      file,
      length: data.length,
      sha256: crypto.createHash('sha256').update(data).digest('hex'),
    };
  }
  const packageFile = path.join(path.dirname(require.resolve('tuf-js')), '..', 'package.json');
  const version = JSON.parse(fs.readFileSync(packageFile, 'utf8')).version;
  process.stdout.write(JSON.stringify({ tufJsVersion: version, node: process.version, targets }));
}

main().catch((error) => {
  process.stderr.write(`tuf-js client: ${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
