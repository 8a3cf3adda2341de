// An app that writes its whole environment as JSON to OUT and exits 0.
import { writeFileSync } from 'node:fs';

writeFileSync(process.env.OUT!, JSON.stringify(process.env));
