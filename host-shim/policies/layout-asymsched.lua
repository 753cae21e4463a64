-- SPDX-License-Identifier: GPL-2.0-or-later
-- Layout policy (docs/migration.md) after AsymSched (Lepers et al.), as
-- paper 001 uses it: cut the remote memory accesses of the VMs with high
-- memory bandwidth. VMs go by bandwidth descending (ties: name), so the
-- heaviest get the node they want first; each goes to the node that
-- holds most of its memory among those its vCPUs fit (an arriving VM,
-- whose memory is still in flight, to the node with the most free
-- memory). A VM whose memory is split over nodes and whose bandwidth is
-- at least `high_mbps` also gets move_memory to that node: the remote
-- part would cost bandwidth * remote share. Decides only; no timers.
local vs = vshare
local cfg = vs.config { high_mbps = 1000 }

local function bw(vm)
  return (vm.profile or {}).bandwidth_mbps or 0
end

local function by_bw(a, b)
  if bw(a) ~= bw(b) then return bw(a) > bw(b) end
  return a.name < b.name
end

-- the node the VM fits with most of its memory (incoming: most free
-- memory), ties: most free pCPUs, then the lowest number
local function want(state, cap, vm)
  local best, bf, bm
  for _, n in ipairs(vs.node_ids(state)) do
    local f = vs.fits(cap, n, vm)
    local m = vm.incoming and cap[n].mem or vs.vm_mem_on(vm, n)
    if best == nil or (f and not bf) or
       (f == bf and (m > bm or (m == bm and cap[n].pcpus > cap[best].pcpus))) then
      best, bf, bm = n, f, m
    end
  end
  return best, bf
end

function layout(state, incoming)
  local cap, vms = vs.capacity(state), {}

  for i, vm in ipairs(state.vms) do vms[i] = vm end
  table.sort(vms, by_bw)
  for _, vm in ipairs(vms) do
    local n, fit = want(state, cap, vm)
    local total = vs.vm_mem(vm)
    local here = vs.vm_mem_on(vm, n)
    local remote = total > 0 and (total - here) / total or 0
    local why = vm.incoming
      and string.format("arriving, %.0f MB/s: node %d has the most free memory (%s)",
                        bw(vm), n, vs.gib(cap[n].mem))
      or string.format("%.0f MB/s: node %d holds %.0f%% of its memory",
                       bw(vm), n, 100 * (1 - remote))
    vs.place(vm.name, n, why .. (fit and "" or "; no node fits its vCPUs"))
    vs.take(cap, n, vm)
    if not vm.incoming and remote > 0 and bw(vm) >= cfg.high_mbps then
      vs.move_memory(vm.name, n, string.format(
        "%.0f MB/s >= %.0f: %.0f%% of its memory is remote, %.0f MB/s of remote traffic",
        bw(vm), cfg.high_mbps, 100 * remote, bw(vm) * remote))
    end
  end
end
