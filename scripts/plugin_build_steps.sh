# Steps shared by scripts/build_plugin.sh and scripts/build_plugin_stock.sh (sourced; they define say and die).

# plugin_load_check <lmp> <plugin .so> <log>: load the plugin into that LAMMPS and ask for a model file that
# does not exist; the plugin's own error message proves that `plugin load` registered pair style mliap/torch.
plugin_load_check() {
    local lmp="$1" so="$2" log="$3"
    printf 'plugin load %s\npair_style mliap/torch /nonexistent.plugin.pt\n' "$so" \
        | "$lmp" -nocite -log none > "$log" 2>&1 || true
    grep -q "cannot open model file /nonexistent.plugin.pt" "$log" \
        || { cat "$log"; die "LAMMPS ($lmp) cannot load $so"; }
}

# plugin_configure <dest> <cmake options...>: configure lammps_plugin/ in <dest>/build (log <dest>/cmake.log).
plugin_configure() {
    local dest="$1"
    shift
    cmake -S "$ROOT/lammps_plugin" -B "$dest/build" "$@" > "$dest/cmake.log" 2>&1 \
        || { tail -30 "$dest/cmake.log"; die "cmake configuration failed; full log: $dest/cmake.log"; }
}

# plugin_compile <dest> <jobs>: compile the configured plugin, copy it to <dest>/mliap_torch_plugin.so and
# remove the build folder (log <dest>/build.log).
plugin_compile() {
    local dest="$1" jobs="$2"
    cmake --build "$dest/build" -j "$jobs" > "$dest/build.log" 2>&1 \
        || { tail -30 "$dest/build.log"; die "compilation failed; full log: $dest/build.log"; }
    cp "$dest/build/mliap_torch_plugin.so" "$dest/mliap_torch_plugin.so"
    rm -rf "$dest/build"
}
