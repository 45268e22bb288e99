// Validate one .glb with the Khronos glTF validator; print its JSON report on stdout.
// usage: node validate.mjs FILE.glb   (NODE_PATH or a sibling node_modules must hold gltf-validator)
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";

const require = createRequire(process.env.GLTF_VALIDATOR_DIR ? process.env.GLTF_VALIDATOR_DIR + "/" : import.meta.url);
const validator = require("gltf-validator");
const data = await readFile(process.argv[2]);
const report = await validator.validateBytes(new Uint8Array(data), { maxIssues: 100 });
process.stdout.write(JSON.stringify(report));
