// Prints the reliability suite's summary table from the figure files the test files wrote.
// Run after the tests: `node test/reliability/summary.ts` (the Makefile does it).
import { figuresDir, readFigureFiles, summaryTable } from "./figures.ts";

const files = readFigureFiles();
if (files.length === 0) {
  console.log(`Reliability suite: no figures in ${figuresDir()} (no reliability test ran)`);
} else {
  console.log(summaryTable(files));
}
