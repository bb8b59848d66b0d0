# Shared by build.sh, test.sh and release-boot.sh (sourced).

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

# need_qemu ARCH: QEMU for ARCH's machines, installed when missing.
need_qemu() {
    if [ "$1" = arm64 ]; then
        command -v qemu-system-aarch64 >/dev/null || install_qemu qemu-system-arm
    else
        command -v qemu-system-x86_64 >/dev/null || install_qemu qemu-system-x86
    fi
}

# vm_machine ARCH DISK: the QEMU command line, in the array `qemu`, of the
# machine the tests boot the image on with its own kernel: `-M virt`
# (arm64, emulated: no KVM needed) or `-M q35` (amd64), 2 CPUs, 1 GiB, the
# qcow2 DISK on virtio, a virtio network card on the netdev `n0` and a
# random-number source. The caller adds the kernel, the network and the
# serial console.
vm_machine() {
    if [ "$1" = arm64 ]; then
        qemu=(qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 1024
              -append "root=LABEL=RASPIROOT rw console=ttyAMA0 net.ifnames=0 rootwait"
              -drive if=none,id=hd0,file="$2",format=qcow2 -device virtio-blk-pci,drive=hd0)
    else
        qemu=(qemu-system-x86_64 -M q35 -smp 2 -m 1024
              -append "root=LABEL=RASPIROOT rw console=ttyS0 net.ifnames=0 rootwait"
              -drive if=virtio,file="$2",format=qcow2)
    fi
    qemu+=(-device virtio-net-pci,netdev=n0
           -object rng-random,filename=/dev/urandom,id=rng0 -device virtio-rng-pci,rng=rng0)
}
