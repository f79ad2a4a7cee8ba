// Validates a Teams manifest.json with npm @microsoft/app-manifest's own API, offline.
// Usage: node manifest/validate_node.cjs path/to/manifest.json
// The package reads the schema named by $schema from its own copy; any network fetch is refused
// here so that a schema it does not ship fails loudly instead of being downloaded.
"use strict";
const path = require("path");

const modules =
  process.env.FRONTDESK_NODE_MODULES || path.join(__dirname, "..", "tests", "js", "node_modules");
globalThis.fetch = async (url) => {
  throw new Error(`network access refused (offline validation): ${url}`);
};
const { AppManifestUtils } = require(path.join(modules, "@microsoft", "app-manifest"));

async function main(file) {
  if (!file) {
    throw new Error("usage: node validate_node.cjs MANIFEST_JSON");
  }
  const [manifest, failures] = await AppManifestUtils.readAndValidateTeamsManifest(file);
  if (failures.length > 0) {
    process.stderr.write(failures.join("\n") + "\n");
    return 1;
  }
  process.stdout.write(`valid Teams manifest ${manifest.manifestVersion} (@microsoft/app-manifest)\n`);
  return 0;
}

main(process.argv[2]).then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(`${error.message}\n`);
    process.exit(2);
  },
);
