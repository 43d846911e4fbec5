#!/usr/bin/env bash
# The shopper pages' message catalogues (gateway/translations/<lang>/LC_MESSAGES/messages.po).
#   scripts/translations.sh extract   collect the marked strings into messages.pot
#   scripts/translations.sh update    extract, then merge new strings into every language's .po
#   scripts/translations.sh compile   build the .mo files the application loads (commit them)
#   scripts/translations.sh add LANG  start a new language (then add it to gateway/web/i18n.py LANGUAGES)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=gateway/translations
extract() {
  pybabel extract -F babel.cfg -k N_ -k _ -k gettext -k ngettext:1,2 --no-location --sort-output \
    --omit-header -o "$DIR/messages.pot" . >/dev/null
}
case "${1:-}" in
  extract) extract ;;
  update) extract; pybabel update -i "$DIR/messages.pot" -d "$DIR" -w 100 --no-fuzzy-matching ;;
  compile) pybabel compile -d "$DIR" --statistics ;;
  add) extract; pybabel init -i "$DIR/messages.pot" -d "$DIR" -w 100 -l "$2" ;;
  *) sed -n '2,6p' "$0"; exit 2 ;;
esac
