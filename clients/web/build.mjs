// Bundles the app into dist/ (committed: the server embeds it with include_bytes!). The output
// depends only on the sources and the pinned esbuild, so `.ci/run` can rebuild and compare.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";

const common = {
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2022",
  legalComments: "none",
  logLevel: "warning",
};

mkdirSync("dist", { recursive: true });
await build({ ...common, entryPoints: ["src/app.ts"], outfile: "dist/app.js" });
await build({ ...common, entryPoints: ["src/capture-worklet.ts"], outfile: "dist/capture-worklet.js" });
for (const file of ["index.html", "app.css"]) {
  copyFileSync(`src/${file}`, `dist/${file}`);
}
