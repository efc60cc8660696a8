-- Argo CD health of an EdgeDevice (modelfleet.io/v1alpha1); Lua 5.1, as Argo CD runs it.
-- spec.models (written by the rollout controller) says what each slot should run; the device's
-- agent reports each slot in status.slots. A failed slot is Degraded (the agent keeps the
-- previous model active), a slot not yet on its assigned revision is Progressing.
local hs = {}

local models = {}
if obj.spec ~= nil and obj.spec.models ~= nil then
  models = obj.spec.models
end
local slots = {}
if obj.status ~= nil and obj.status.slots ~= nil then
  slots = obj.status.slots
end

local names = {}
for name, _ in pairs(models) do
  table.insert(names, name)
end
table.sort(names)

if #names == 0 then
  hs.status = "Healthy"
  hs.message = "No models assigned"
  return hs
end

local failed = nil
local waiting = nil
for _, name in ipairs(names) do
  local want = models[name]
  local got = slots[name]
  if got == nil or (got.targetRevision ~= nil and got.targetRevision ~= want.revision) then
    waiting = waiting or ("slot " .. name .. ": waiting for the agent to take revision "
      .. tostring(want.revision))
  elseif got.phase == "Failed" then
    local why = got.reason or "Failed"
    if got.message ~= nil and got.message ~= "" then
      why = why .. ": " .. got.message
    end
    failed = failed or ("slot " .. name .. " revision " .. tostring(want.revision) .. ": " .. why)
  elseif got.phase ~= "Healthy" or got.activeRevision ~= want.revision then
    waiting = waiting or ("slot " .. name .. ": " .. tostring(got.phase or "Pending")
      .. " revision " .. tostring(want.revision))
  end
end

if failed ~= nil then
  hs.status = "Degraded"
  hs.message = failed
elseif waiting ~= nil then
  hs.status = "Progressing"
  hs.message = waiting
else
  hs.status = "Healthy"
  hs.message = tostring(#names) .. " slot(s) healthy on their assigned revisions"
end
return hs
