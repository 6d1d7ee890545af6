# Shell helpers shared by the results scripts (source it; it needs $PY, the venv's python).
edit_config() {  # edit_config SRC DST EDIT: DST/config.json = SRC/config.json with EDIT (Python on the dict `c`)
  $PY -c 'import json, sys; c = json.load(open(sys.argv[1])); exec(sys.argv[3]); json.dump(c, open(sys.argv[2], "w"), indent=1)' \
    "$1/config.json" "$2/config.json" "$3"
}
