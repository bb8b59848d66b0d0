# Shared by build.sh and test.sh (sourced).

# The Debian archive of the build machine's own apt configuration.
mirror() {
    echo "${MIRROR:-$(apt-get indextargets --format '$(REPO_URI)' 'Label: Debian' 'Identifier: Packages' | sort -u | head -1)}"
}

# Install qemu packages from the same Debian line as the host's qemu-utils:
# bookworm-backports on these build machines (bookworm's own qemu 7.2
# conflicts with it), else the host's suite. /etc/apt stays untouched.
install_qemu() {
    local suite list
    suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
    if dpkg-query -W -f '${Version}' qemu-utils 2>/dev/null | grep -q bpo; then
        list=$(mktemp)
        echo "deb $(mirror) $suite-backports main" > "$list"
        apt-get -o Dir::Etc::sourcelist="$list" update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            -t "$suite-backports" -o Dir::Etc::sourcelist="$list" "$@"
        rm -f "$list"
    else
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
    fi
}
