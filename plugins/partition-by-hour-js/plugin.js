// partition-by-hour-js: an IceDB partition strategy written in JavaScript.
//
// Puts each row in an hourly Hive partition `y=YYYY/m=MM/d=DD/h=HH` (UTC)
// taken from one field. Settings: `field` (default "ts"). The field may hold
// epoch milliseconds (int or float; integers >= 10^14 are read as
// microseconds), a timestamp value, or RFC 3339 text.
//
// WIT to JS: s64 values arrive as BigInt; variants are `{ tag, val }`;
// returning a value means `ok`, throwing `{ row, reason }` means `err`.

let field = "ts";

const pad = (n, width) => String(n).padStart(width, "0");

function toMillis(value) {
  switch (value.tag) {
    case "timestamp":
      return Number(value.val / 1000n);
    case "int": {
      const n = value.val;
      const abs = n < 0n ? -n : n;
      return Number(abs >= 100000000000000n ? n / 1000n : n);
    }
    case "float":
      if (Number.isFinite(value.val)) return value.val;
      throw new Error(`${value.val} is not a time`);
    case "text": {
      const ms = Date.parse(value.val);
      if (Number.isNaN(ms)) throw new Error(`\`${value.val}\` is not RFC 3339`);
      return ms;
    }
    case "null":
      throw new Error("missing (null)");
    default:
      throw new Error(`a ${value.tag} is not a time`);
  }
}

function hourPath(ms) {
  const t = new Date(ms);
  if (Number.isNaN(t.getTime())) throw new Error("time out of range");
  return `y=${pad(t.getUTCFullYear(), 4)}/m=${pad(t.getUTCMonth() + 1, 2)}/d=${pad(t.getUTCDate(), 2)}/h=${pad(t.getUTCHours(), 2)}`;
}

export const partitionStrategy = {
  configure(settings) {
    for (const [key, value] of settings) {
      if (key === "field" && value !== "") field = value;
      else throw `unknown setting \`${key}\` (known: field)`;
    }
  },

  fields() {
    return [field];
  },

  partition(batch) {
    const column = batch.columns.find((c) => c.name === field);
    if (!column) throw { row: undefined, reason: `the batch has no column \`${field}\`` };
    const paths = new Array(column.values.length);
    let lastHour = null;
    let lastPath = null;
    for (let row = 0; row < column.values.length; row++) {
      let ms;
      try {
        ms = toMillis(column.values[row]);
      } catch (error) {
        throw { row, reason: `field \`${field}\`: ${error.message}` };
      }
      const hour = Math.floor(ms / 3600000);
      if (hour !== lastHour) {
        try {
          lastPath = hourPath(ms);
        } catch (error) {
          throw { row, reason: `field \`${field}\`: ${error.message}` };
        }
        lastHour = hour;
      }
      paths[row] = lastPath;
    }
    return paths;
  },
};
