-- SPDX-License-Identifier: GPL-2.0-or-later
-- Layout policy (docs/migration.md), paper 001's "Simple": the VM with the
-- higher LLC miss rate gets the better layout first.
--  * CPU-bound (and unprofiled) residents keep their node.
--  * Memory-bound VMs, by mpki descending (ties: name), each get the node
--    with the most free pCPUs, then free memory, that fits their vCPUs.
--  * A CPU-bound arrival changes nothing for the others (the paper's
--    control): every resident keeps its node, the arrival goes where it
--    fits best.
-- Decides only (vshare.place); it has no timers, so enabling it as an
-- ordinary policy does nothing.
local vs = vshare

local function keep(state, cap, vm, why)
  local n = vs.vm_home(vm, state)
  vs.take(cap, n, vm)
  vs.place(vm.name, n, string.format("%s: keeps node %d", why, n))
end

local function give_best(state, cap, vm, why)
  local n, fit = vs.roomiest(cap, vm, state)
  local c = cap[n]
  vs.place(vm.name, n, string.format(
    "%s: node %d has %d free pCPUs, %s free%s", why, n, c.pcpus,
    vs.gib(c.mem), fit and "" or " (no node fits its " ..
    vs.vm_vcpus(vm) .. " vCPUs)"))
  vs.take(cap, n, vm)
end

local function by_mpki(a, b)
  local x, y = vs.vm_mpki(a), vs.vm_mpki(b)
  if x ~= y then return x > y end
  return a.name < b.name
end

function layout(state, incoming)
  local cap = vs.capacity(state)
  local arrival = incoming and vs.find_vm(state, incoming)
  local cpu_arrival = arrival and vs.vm_class(arrival) ~= "memory"
  local membound = {}

  for _, vm in ipairs(state.vms) do
    local class = vs.vm_class(vm)
    if vm.incoming then
      -- placed last (CPU-bound) or with the memory-bound below
      if class == "memory" then membound[#membound + 1] = vm end
    elseif class ~= "memory" then
      keep(state, cap, vm, string.format("%s-bound, mpki %.1f", class,
                                         vs.vm_mpki(vm)))
    elseif cpu_arrival then
      keep(state, cap, vm, string.format(
        "memory-bound, mpki %.1f; the CPU-bound arrival %s moves no neighbour",
        vs.vm_mpki(vm), incoming))
    else
      membound[#membound + 1] = vm
    end
  end
  table.sort(membound, by_mpki)
  for i, vm in ipairs(membound) do
    give_best(state, cap, vm, string.format(
      "mpki %.1f, %s of %d memory-bound VMs", vs.vm_mpki(vm),
      i == 1 and "highest" or ("#" .. i), #membound))
  end
  for _, vm in ipairs(state.vms) do
    if vm.incoming and vs.vm_class(vm) ~= "memory" then
      give_best(state, cap, vm, string.format(
        "arriving %s-bound (mpki %.1f), placed after the others",
        vs.vm_class(vm), vs.vm_mpki(vm)))
    end
  end
end
