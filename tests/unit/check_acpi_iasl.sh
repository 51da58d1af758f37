#!/bin/sh
# Checks kiln's ACPI tables with ACPICA, the same table code and AML interpreter Linux uses:
#   - iasl disassembles XSDT, FADT, MADT and DSDT without a warning or error,
#   - the disassembly shows what the guest relies on (\_S5, PCI0 windows, COM1, FADT flags),
#   - the disassembled DSDT compiles back cleanly,
#   - acpiexec loads the tables, evaluates \_S5 and enters S5 on the hardware-reduced path,
#     and the GED's _EVT for the power button's interrupt notifies the button with 0x80.
# (The RSDP is checked by test_acpi: iasl does not take one on its own.)
#
# usage: check_acpi_iasl.sh ACPI_DUMP_EXECUTABLE
set -eu

dump=$1
ncpus=3

for tool in iasl acpiexec; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: $tool not installed (Debian package acpica-tools)"
        exit 77
    fi
done

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$dump" "$dir" "$ncpus"
cd "$dir"

failed=0
fail() {
    echo "FAIL: $*"
    failed=1
}

# Fails unless file $1 contains the fixed string $2.
expect() {
    grep -qF -- "$2" "$1" || fail "$1 lacks: $2"
}

# Fails if the tool's log $1 mentions a problem.
clean_log() {
    if grep -iE 'warning|error|incorrect|invalid|exception|AE_' "$1"; then
        fail "$1 reports problems"
    fi
}

for t in xsdt facp apic dsdt; do
    if ! iasl -d "$t.dat" >"$t.log" 2>&1; then
        cat "$t.log"
        fail "iasl -d $t.dat failed"
        continue
    fi
    clean_log "$t.log"
    [ -s "$t.dsl" ] || fail "no $t.dsl"
    clean_log "$t.dsl"
done

# DSDT: sleep state, host bridge and its windows, legacy devices.
expect dsdt.dsl 'Name (\_S5, Package (0x04)'
expect dsdt.dsl 'Device (PCI0)'
expect dsdt.dsl 'EisaId ("PNP0A03")'
expect dsdt.dsl 'WordBusNumber (ResourceProducer'
expect dsdt.dsl '0x0CF8,             // Range Minimum'
expect dsdt.dsl '0x0D00,             // Range Minimum'
expect dsdt.dsl '0xC0000000,         // Range Minimum'
expect dsdt.dsl '0xFEBFFFFF,         // Range Maximum'
expect dsdt.dsl 'Device (COM1)'
expect dsdt.dsl 'EisaId ("PNP0501")'
expect dsdt.dsl '0x03F8,             // Range Minimum'
expect dsdt.dsl '{4}'
expect dsdt.dsl 'Device (RTC)'
expect dsdt.dsl 'EisaId ("PNP0B00")'
expect dsdt.dsl 'Device (PS2K)'
expect dsdt.dsl 'EisaId ("PNP0303")'
expect dsdt.dsl 'Device (PWRB)'
expect dsdt.dsl 'EisaId ("PNP0C0C")'
expect dsdt.dsl 'Device (GED)'
expect dsdt.dsl 'Name (_HID, "ACPI0013"'
expect dsdt.dsl 'Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )'
expect dsdt.dsl '0x00000005,'
expect dsdt.dsl 'Method (_EVT, 1, Serialized)'
expect dsdt.dsl 'If ((Arg0 == 0x05))'
expect dsdt.dsl 'Notify (\_SB.PWRB, 0x80)'

# FADT: hardware-reduced, reset register, an 8042 (keyboard), no VGA, CMOS RTC present.
expect facp.dsl 'Revision : 06'
expect facp.dsl 'Hardware Reduced (V5) : 1'
expect facp.dsl 'Reset Register Supported (V2) : 1'
expect facp.dsl '8042 Present on ports 60/64 (V2) : 1'
expect facp.dsl 'VGA Not Present (V4) : 1'
expect facp.dsl 'CMOS RTC Not Present (V5) : 0'
expect facp.dsl 'Value to cause reset : 01'

# MADT: one local APIC per vCPU, the I/O APIC, IRQ0 -> GSI 2, LINT1 NMI.
n=$(grep -c 'Subtable Type : 00 \[Processor Local APIC\]' apic.dsl || true)
[ "$n" -eq "$ncpus" ] || fail "MADT has $n local APICs, expected $ncpus"
expect apic.dsl 'Subtable Type : 01 [I/O APIC]'
expect apic.dsl 'Subtable Type : 02 [Interrupt Source Override]'
expect apic.dsl 'Subtable Type : 04 [Local APIC NMI]'

# The disassembly compiles back.
mkdir recompile
if ! iasl -p recompile/dsdt dsdt.dsl >recompile.log 2>&1; then
    cat recompile.log
    fail "iasl could not compile the disassembled DSDT"
fi
expect recompile.log 'Compilation successful. 0 Errors, 0 Warnings'

# ACPICA's interpreter: \_S5 evaluates to {5, 0, 0, 0}; S5 goes through the sleep registers.
acpiexec -b 'evaluate \_S5; sleep 5' xsdt.dat facp.dat apic.dat dsdt.dat >exec.log 2>&1 ||
    fail "acpiexec failed"
clean_log exec.log
expect exec.log '[Integer] = 0000000000000005'
expect exec.log 'Sleep-A: 05'
expect exec.log 'HwExtendedSleep'
expect exec.log 'No outstanding allocations'

# The power button: _EVT(5) notifies PWRB with 0x80; another interrupt number does nothing.
acpiexec -b 'evaluate \_SB.GED._EVT 5; evaluate \_SB.GED._EVT 6' xsdt.dat facp.dat apic.dat \
    dsdt.dat >evt.log 2>&1 || fail "acpiexec (_EVT) failed"
n=$(grep -c 'Received a Device Notify on \[PWRB\].* Value 0x80' evt.log || true)
[ "$n" -eq 1 ] || fail "_EVT: expected one notify of PWRB with 0x80, saw $n"
if grep -iE 'error|exception|AE_' evt.log; then
    fail "evt.log reports problems"
fi

if [ "$failed" -ne 0 ]; then
    for f in *.dsl exec.log evt.log; do
        echo "---- $f"
        cat "$f"
    done
    exit 1
fi
echo "ACPI tables pass iasl and acpiexec checks"
