// A one-line spinner for waits ("fetching metrics…"), drawn only when the
// output is a terminal and the wait lasts long enough to notice (150 ms);
// `stop()` erases it so the result starts on a clean line. Piped output and
// tests see nothing.
export interface SpinnerOut {
  readonly isTTY?: boolean;
  write(s: string): unknown;
}

export interface Spinner {
  stop(): void;
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export function startSpinner(text: string, out: SpinnerOut = process.stdout, intervalMs = 80): Spinner {
  if (!out.isTTY) return { stop() {} };
  let i = 0;
  let timer: NodeJS.Timeout | undefined;
  const draw = (): void => {
    out.write(`\r${FRAMES[i++ % FRAMES.length]} ${text}`);
  };
  const first = setTimeout(() => {
    draw();
    timer = setInterval(draw, intervalMs);
  }, 150);
  return {
    stop() {
      clearTimeout(first);
      if (timer) {
        clearInterval(timer);
        out.write('\r\x1b[2K');
      }
    },
  };
}

/** Run `fn` with a spinner shown while it is pending. */
export async function withSpinner<T>(text: string, fn: () => Promise<T>, out?: SpinnerOut): Promise<T> {
  const s = startSpinner(text, out);
  try {
    return await fn();
  } finally {
    s.stop();
  }
}
