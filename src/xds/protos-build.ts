// Builds envoy-protos.json (see protos.ts) from the .proto files shipped in
// @grpc/grpc-js-xds/deps. Run after changing PROTO_FILES:
//   node src/xds/protos-build.ts
import protobuf from 'protobufjs';
import { existsSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DESCRIPTOR_URL, PROTO_FILES } from './protos.ts';

/** The include dirs, or undefined when @grpc/grpc-js-xds is not installed. */
export function includeDirs(): string[] | undefined {
  const require = createRequire(import.meta.url);
  let xdsPkg: string;
  let pbjsPkg: string;
  try {
    xdsPkg = path.dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
    pbjsPkg = path.dirname(require.resolve('protobufjs/package.json'));
  } catch {
    return undefined;
  }
  const deps = path.join(xdsPkg, 'deps');
  // protobufjs' own dir supplies google/protobuf/descriptor.proto.
  return [...['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(deps, d)), pbjsPkg];
}

/** Loads the protos and returns the descriptor JSON text. */
export function buildDescriptor(dirs: string[]): string {
  const root = new protobuf.Root();
  root.resolvePath = (_origin: string, target: string): string => {
    if (path.isAbsolute(target)) return target;
    for (const d of dirs) {
      const p = path.join(d, target);
      if (existsSync(p)) return p;
    }
    return target;
  };
  root.loadSync([...PROTO_FILES], { keepCase: true });
  root.resolveAll();
  return `${JSON.stringify(root.toJSON({ keepComments: false }))}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dirs = includeDirs();
  if (dirs === undefined) {
    console.error('protos-build: @grpc/grpc-js-xds is not installed (npm install)');
    process.exit(1);
  }
  const text = buildDescriptor(dirs);
  writeFileSync(DESCRIPTOR_URL, text);
  console.log(`wrote ${fileURLToPath(DESCRIPTOR_URL)} (${text.length} bytes)`);
}
