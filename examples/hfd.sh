# Source this from ~/.bashrc or ~/.zshrc: `hfd org/name` downloads through your mirror, with hfd.sh-style
# muscle memory (-I/-X globs, --local-dir, -j). Set HF_MIRROR to change the mirror.
#
#   hfd Duffy/Llama-820m -I '*.safetensors'
#   hfd datasets/org/name --local-dir ./data
hfd() {
    hfget "$@" --mirror "${HF_MIRROR:-hf-mirror.com}"
}
