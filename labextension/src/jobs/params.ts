/**
 * The dialog's parameter text → what the API takes. Only the lines are split here; names and values
 * (a value list "0.001, 0.01" or a range "1:10:2") are the server's to check and parse, so the rules
 * live in one place and its messages say what is wrong.
 */

export interface IParsed {
  values: Record<string, string>;
  problems: string[]; // sentences, one per line that cannot be read
}

/**
 * One `name <sep> value` per line; blank lines and lines starting with # are left out.
 * The first of the separators on a line splits it, so "layers: 1:4" is layers → "1:4".
 */
function parseLines(
  text: string,
  separators: string[],
  example: string
): IParsed {
  const values: Record<string, string> = {};
  const problems: string[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) {
      return;
    }
    const at = Math.min(
      ...separators.map(s => line.indexOf(s)).filter(i => i >= 0)
    );
    if (!Number.isFinite(at)) {
      problems.push(
        `Line ${index + 1} (“${line}”) has no “${separators[0]}”: write it as ${example}.`
      );
      return;
    }
    const name = line.slice(0, at).trim();
    const value = line.slice(at + 1).trim();
    if (!name) {
      problems.push(
        `Line ${index + 1} (“${line}”) has no parameter name before “${line[at]}”.`
      );
    } else if (name in values) {
      problems.push(
        `The parameter “${name}” is given twice (line ${index + 1}); keep one line per parameter.`
      );
    } else {
      values[name] = value;
    }
  });
  return { values, problems };
}

/** A notebook's parameters (papermill -p): `name = value` lines. */
export const parseParameters = (text: string) =>
  parseLines(text, ['='], '“name = value”, e.g. “epochs = 5”');

/** A scan's parameters: `name: values` lines (values as the user wrote them). */
export const parseGrid = (text: string) =>
  parseLines(
    text,
    [':', '='],
    '“name: values”, e.g. “lr: 0.001, 0.01, 0.1” or “layers: 1:4”'
  );
